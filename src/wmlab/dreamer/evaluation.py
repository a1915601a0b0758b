"""Evaluate a Dreamer run in one context and record the result in the run's ``results/eval.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wmlab.dreamer.policy import evaluate, load_policy
from wmlab.envs import make
from wmlab.runs import RunDir


def evaluate_run(
    run: str | Path,
    episodes: int = 10,
    mode: str = "sample",
    context: Mapping[str, float] | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Evaluate the newest checkpoint of ``run`` for ``episodes`` episodes in ``context`` (missing features take
    their defaults). Appends one JSON line to ``results/eval.jsonl`` and returns it."""
    policy = load_policy(run, mode)
    cfg = policy.config
    env = make(
        cfg.env.name,
        obs="state" if cfg.env.modality == "state" else "pixels",
        context=dict(context or {}),
        action_repeat=cfg.env.action_repeat,
        image_size=cfg.env.image_size,
        seed=seed,
    )
    try:
        result = evaluate(policy, env, episodes, seed, show_progress)
    finally:
        env.close()
    record = {
        "env": cfg.env.name,
        "context": result["contexts"][0],
        "mode": mode,
        "checkpoint_step": policy.step,
        **{k: v for k, v in result.items() if k != "contexts"},
    }
    results = RunDir(run).results_dir
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "eval.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return record
