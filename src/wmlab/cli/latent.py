"""`wmlab train latent`: latent-action world models on a feature cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from wmlab.cli.app import app, config_overrides, console, train_app


@train_app.command("latent", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_latent_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "--run-dir", help="run directory; re-running the same command resumes it"),
    variant: Optional[str] = typer.Option(None, help="action | la | la-vq"),
    data: Optional[Path] = typer.Option(None, help="the dataset (episode store) with its feature cache"),
    features: Optional[str] = typer.Option(None, help="feature cache name, e.g. dinov2-224, dinov2-112, state"),
    preset: str = typer.Option("state", help="paper (GPU) | cpu | cpu-pooled | state"),
    steps: Optional[int] = typer.Option(None, help="training steps"),
    seed: Optional[int] = typer.Option(None, help="run seed"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train a latent world model offline. Extra KEY=VALUE arguments override config keys (model.vq.num_codes=32)."""
    from wmlab.config import build_config
    from wmlab.latent.train import LatentConfig, train_latent

    extra: dict = {}
    for section, key, value in (
        ("model", "variant", variant),
        ("data", "path", str(data) if data else None),
        ("data", "features", features),
        ("train", "max_steps", steps),
    ):
        if value is not None:
            extra.setdefault(section, {})[key] = value
    if seed is not None:
        extra["seed"] = seed
    overrides = config_overrides(ctx.args, "wmlab train latent")
    cfg = build_config(LatentConfig, "latent", preset, overrides=overrides, extra=extra)
    summary = train_latent(cfg, run, show_progress=progress)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    loss = summary.get("train/latent_pred_loss")
    console.print(f"done: {summary['step']} steps" + (f", prediction loss {loss:.4f}" if loss is not None else ""))


@app.command("metrics")
def metrics_cmd(
    run: Path = typer.Argument(..., help="a latent world-model run"),
    rollouts: int = typer.Option(600, help="open-loop rollouts for rollout_mse"),
    max_batches: Optional[int] = typer.Option(None, help="limit the val batches (default: all)"),
) -> None:
    """Validation metrics (prediction error, rollout MSE, swap score, shuffle delta, codebook use) with 95% CIs."""
    from wmlab.latent.run import run_metrics

    result = run_metrics(run, rollouts, max_batches)
    for name in ("latent_pred_error", "copy_error", "rollout_mse", "swap_score", "shuffle_delta", "vq_commit_loss"):
        if name in result and "mean" in result[name]:
            value = result[name]
            console.print(
                f"  {name}: {value['mean']:.4f} [{value.get('ci_low', float('nan')):.4f}, "
                f"{value.get('ci_high', float('nan')):.4f}]"
            )
    for name in ("perplexity", "perplexity_norm", "dead_code_rate"):
        if name in result:
            console.print(f"  {name}: {result[name]:.3f}")
    flagged = [flag for flag, on in result["flags"].items() if on]
    console.print(f"flags: {', '.join(flagged) or 'none'}; wrote {run / 'results' / 'metrics.json'}")
