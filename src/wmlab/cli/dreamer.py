"""`wmlab train dreamer`, `eval`, `experts`: the contextual-RL pipeline (reports: cli/report.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from wmlab.cli.app import app, config_overrides, console, parse_assignments, train_app


def _context_alias(override: str) -> str:
    """``ctx.X=...`` is short for ``context.X=...``; ``ctx.loss`` for ``context.repr_loss``."""
    key, sep, value = override.partition("=")
    if key.startswith("ctx."):
        key = "context." + key[4:]
    if key == "context.loss":
        key = "context.repr_loss"
    return key + sep + value


@train_app.command("dreamer", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_dreamer_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "--run-dir", help="run directory; re-running the same command resumes it"),
    env: Optional[str] = typer.Option(None, help="walker, ball_in_cup, cartpole, pendulum"),
    preset: str = typer.Option("tiny", help="tiny | small (2-core CPU) | paper (reference hyperparameters)"),
    obs: Optional[str] = typer.Option(None, help="world-model modality: state or pixels"),
    contexts: Optional[str] = typer.Option(None, help="default | single_0 | single_1 | double_box | specific"),
    variant: Optional[str] = typer.Option(None, help="dreamer | crssm-s | crssm-d | dali-s | dali-d"),
    steps: Optional[int] = typer.Option(None, help="env steps (all workers together)"),
    seed: Optional[int] = typer.Option(None, help="run seed"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train a DreamerV3 agent online. Extra KEY=VALUE arguments override config keys (model.deter=256)."""
    from wmlab.config import build_config
    from wmlab.dreamer.config import DreamerConfig
    from wmlab.dreamer.train import train_dreamer

    extra: dict = {}
    for key, value in (
        ("env.name", env),
        ("env.modality", obs),
        ("env.train_contexts", contexts),
        ("variant", variant),
        ("train.steps", steps),
        ("seed", seed),
    ):
        if value is not None:
            section, _, leaf = key.rpartition(".")
            (extra.setdefault(section, {}) if section else extra)[leaf] = value
    context_hint = (
        "training contexts are chosen with --contexts; for one given context use "
        "`--contexts specific env.context.gravity=4.0` (a key per feature; `wmlab envs` lists them)"
    )
    args = config_overrides(ctx.args, "wmlab train dreamer", {"--context": context_hint, "-c": context_hint})
    overrides = [_context_alias(arg) for arg in args]
    cfg = build_config(DreamerConfig, "dreamer", preset, overrides=overrides, extra=extra)
    try:
        summary = train_dreamer(cfg, run, show_progress=progress)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/yellow]: run the same command again to resume {run} from its last checkpoint"
        )
        raise typer.Exit(130) from None
    console.print(
        f"done: {summary['env_steps']} env steps, {summary['updates']} updates, "
        f"{summary['episodes']} episodes, mean return of the last 10: {summary['return_last10']}"
    )


@app.command("eval")
def eval_cmd(
    run: Path = typer.Argument(..., help="a Dreamer run directory"),
    episodes: Optional[int] = typer.Option(None, help="episodes per context (default 10; with --grid: 50)"),
    mode: str = typer.Option("sample", help="sample (the DALI protocol) or mode (greedy actions)"),
    context: Optional[list[str]] = typer.Option(None, "--context", "-c", help="feature=value; default: defaults"),
    grid: bool = typer.Option(False, "--grid", help="evaluate on the environment's whole evaluation grid"),
    workers: int = typer.Option(1, help="worker processes for --grid"),
    seed: int = typer.Option(0, help="seed of the first episode (episode i uses seed + i)"),
) -> None:
    """Evaluate a run's newest checkpoint; appends the results to RUN/results/eval.jsonl."""
    if grid:
        from wmlab.eval.zero_shot import evaluate_grid

        records = evaluate_grid(run, episodes or 50, workers, mode, seed, show_progress=True)
        means = [r["mean"] for r in records]
        console.print(
            f"{len(records)} contexts x {records[0]['episodes']} episodes: mean return "
            f"{sum(means) / len(means):.1f} (min {min(means):.1f}, max {max(means):.1f}); "
            f"per-context results in {run / 'results' / 'eval.jsonl'}"
        )
        return
    from wmlab.dreamer.evaluation import evaluate_run

    result = evaluate_run(run, episodes or 10, mode, parse_assignments(list(context or [])), seed, show_progress=True)
    console.print(
        f"{result['env']} {escape(json.dumps(result['context']))}: return {result['mean']:.1f} "
        f"± {result['std']:.1f} over {result['episodes']} episodes (checkpoint at {result['checkpoint_step']} steps)"
    )


@app.command("experts", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def experts_cmd(
    ctx: typer.Context,
    env: str = typer.Option(..., help="walker, ball_in_cup, cartpole, pendulum"),
    root: Path = typer.Option(Path("experts"), help="folder of the expert runs and of ENV/experts.json"),
    preset: str = typer.Option("tiny", help="Dreamer preset of the experts (use the main runs' budget)"),
    steps: Optional[int] = typer.Option(None, help="env steps per expert (default: the preset's)"),
    seeds: str = typer.Option("0", help="comma-separated expert seeds (paper: 0,42,1337,13,71)"),
    episodes: int = typer.Option(10, help="evaluation episodes per context (paper: 50)"),
    workers: int = typer.Option(1, help="worker processes for the random-policy evaluation"),
    subset: str = typer.Option("all", help="expert contexts: all (spec) or corners (default + 4 corners, reduced)"),
) -> None:
    """Train (or reuse) the per-context experts and evaluate them and the random policy: ROOT/ENV/experts.json.
    Extra KEY=VALUE arguments override the experts' config."""
    from wmlab.eval.experts import build_expert_table, train_experts

    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    train_experts(env, root, seed_list, preset, steps, config_overrides(ctx.args, "wmlab experts"), subset=subset)
    table = build_expert_table(env, root, seed_list, episodes, workers, subset=subset)
    for context, expert, random in zip(table.contexts, table.expert, table.random):
        console.print(f"  {escape(json.dumps(context))}: expert {expert:.1f}, random {random:.1f}")
    console.print(f"wrote {root / env / 'experts.json'}")
