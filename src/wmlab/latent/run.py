"""Load a trained latent world-model run, and compute its validation metrics into ``results/metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wmlab.atomic import atomic_write_text
from wmlab.config import from_dict
from wmlab.errors import WmlabError
from wmlab.latent.metrics import validation_metrics
from wmlab.latent.train import LatentConfig, open_windows
from wmlab.latent.world_model import LatentWorldModel
from wmlab.runs import Checkpointer, RunDir


def load_latent(run: str | Path) -> tuple[LatentWorldModel, LatentConfig, dict[str, Any]]:
    """(model in eval mode, config, checkpoint) of the newest checkpoint of a latent run."""
    RunDir(run).require_kind("latent")
    checkpoint = Checkpointer(RunDir(run).checkpoints_dir).load_latest()
    if checkpoint is None:
        raise WmlabError(f"{run} has no checkpoint; train it with `wmlab train latent --run {run}`")
    cfg = from_dict(LatentConfig, checkpoint["config"])
    tokens, dim = checkpoint["token_shape"]
    model = LatentWorldModel(cfg.model, tokens, dim, cfg.seed)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), cfg, checkpoint


def run_metrics(run: str | Path, rollouts: int = 600, max_batches: int | None = None) -> dict[str, Any]:
    """Validation metrics of spec §10 on the run's val split; written to ``results/metrics.json``."""
    model, cfg, checkpoint = load_latent(run)
    metrics = validation_metrics(model, open_windows(cfg, "val"), rollouts, max_batches)
    result = {
        "run": str(run),
        "variant": cfg.model.variant,
        "step": checkpoint["step"],
        "encoder": checkpoint["encoder"],
        "features": cfg.data.features,
        "pool": cfg.data.pool,
        "rollouts": rollouts,
        **metrics,
    }
    path = RunDir(run).results_dir / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    return result
