"""`wmlab train decoder`, `wmlab plan`, `wmlab plan-oracle`: close the latent-action loop on PushT."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from wmlab.cli.app import app, config_overrides, console, train_app


@train_app.command("decoder", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_decoder_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="a trained la or la-vq run"),
    train_pairs: Optional[int] = typer.Option(None, help="train pairs (paper 100k; CPU presets 20k / 50k)"),
    val_pairs: Optional[int] = typer.Option(None, help="validation pairs (paper 10k)"),
    rebuild: bool = typer.Option(False, help="rebuild the pair cache even if it matches"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Build the (tokens, predicted tokens, latent, macro action) pairs and train the action decoder d(z, e).
    Extra KEY=VALUE arguments override the decoder config (use_delta=true, patience=10)."""
    from wmlab.config import from_dict, merge, parse_overrides, to_dict
    from wmlab.latent.decoder import DecoderConfig, train_decoder

    values = merge(to_dict(DecoderConfig()), parse_overrides(config_overrides(ctx.args, "wmlab train decoder")))
    if train_pairs is not None:
        values["train_pairs"] = train_pairs
    if val_pairs is not None:
        values["val_pairs"] = val_pairs
    summary = train_decoder(run, from_dict(DecoderConfig, values), rebuild=rebuild, show_progress=progress)
    console.print(
        f"decoder: val RMSE {summary['val_rmse']:.4f} (constant-mean predictor {summary['constant_rmse']:.4f}) "
        f"after {summary['epochs']} epochs on {summary['train_pairs']} pairs; wrote {summary['path']}"
    )


@app.command("plan", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def plan_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="a trained latent world-model run (la / la-vq need `wmlab train decoder`)"),
    planner: Optional[str] = typer.Option(None, help="cem | discrete-cem | mppi | gd (default: the variant's own)"),
    evals: Optional[int] = typer.Option(None, help="evaluation instances (default 100)"),
    mpc: bool = typer.Option(False, "--mpc", help="replan every n_exec macro steps (bounded by max_iter)"),
    preset: str = typer.Option("state", help="planner budget: paper | cpu | state"),
    seed: Optional[int] = typer.Option(None, help="target draw and planner seed"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Plan to goal images from validation segments and report success under both rules (and calibration rows).
    Extra KEY=VALUE arguments override the plan config (cem.init=empirical, max_iter=5, batch=10)."""
    from wmlab.config import build_config
    from wmlab.eval.planning import PlanConfig, evaluate_planning
    from wmlab.latent.run import load_latent

    extra: dict = {"mpc": mpc}
    if planner is None:
        model, _, _ = load_latent(run)
        planner = "discrete-cem" if model.cfg.variant == "la-vq" else "cem"
    extra["planner"] = planner
    if evals is not None:
        extra["evals"] = evals
    if seed is not None:
        extra["seed"] = seed
    cfg = build_config(PlanConfig, "plan", preset, overrides=config_overrides(ctx.args, "wmlab plan"), extra=extra)
    result = evaluate_planning(run, cfg, show_progress=progress)
    row, calibration = result["result"], result["calibration"]
    for name, r in (("planned", row), ("null plan", calibration["null"]), ("replay", calibration["replay"])):
        console.print(
            f"  {name:9s}: success(state) {r['success_state']:.2f} {_ci(r['success_state_ci95'])}, "
            f"success(coverage) {r['success_coverage']:.2f} {_ci(r['success_coverage_ci95'])}, "
            f"state dist {r['mean_state_dist']:.1f}"
        )
    if mpc:
        console.print(f"  latched success(state) {row['success_state_latched']:.2f} (final {row['success_state']:.2f})")
    console.print(f"wrote {result['path']}")


@app.command("plan-oracle")
def plan_oracle_cmd(
    data: Path = typer.Argument(..., help="a PushT dataset (episode store)"),
    evals: int = typer.Option(100, help="evaluation instances"),
    seed: int = typer.Option(0, help="target draw and planner seed"),
    samples: int = typer.Option(100, help="CEM samples N"),
    elites: int = typer.Option(10, help="CEM elites k"),
    iterations: int = typer.Option(20, help="CEM iterations"),
    var_scale: float = typer.Option(
        3.0, help="initial CEM sigma in normalised action units; wide, so that samples find contact with the block"
    ),
    workers: int = typer.Option(1, help="processes"),
    out: Optional[Path] = typer.Option(None, help="result JSON (default DATA/targets/oracle-...json)"),
) -> None:
    """Calibration: CEM with the PushT simulator as the dynamics on the same targets (must reach >= 0.9)."""
    from wmlab.eval.oracle import oracle_study
    from wmlab.planning import CEMConfig

    cem = CEMConfig(samples=samples, elites=elites, iterations=iterations, var_scale=var_scale)
    result, target = oracle_study(data, evals, seed, cem, workers, out)
    row = result["row"]
    console.print(
        f"oracle: success(state) {row['success_state']:.2f} {_ci(row['success_state_ci95'])}, success(coverage) "
        f"{row['success_coverage']:.2f}; null plan {result['calibration']['null']['success_state']:.2f}, replay "
        f"{result['calibration']['replay']['success_state']:.2f}; wrote {target}"
    )


def _ci(interval) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"
