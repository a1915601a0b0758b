"""The ``wmlab`` command. Thin: parses arguments, calls library functions, prints results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wmlab.errors import WmlabError

app = typer.Typer(
    help="wmlab: world models that generalize.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
envs_app = typer.Typer(help="Contextual environments: list them, or look at one in a context.")
app.add_typer(envs_app, name="envs")
console = Console()


def parse_assignments(items: list[str]) -> dict[str, float]:
    """``["gravity=4", "actuator_strength=0.5"]`` -> ``{"gravity": 4.0, "actuator_strength": 0.5}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise WmlabError(f"context values look like feature=value (for example gravity=4.0), got {item!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise WmlabError(f"context value for {key!r} must be a number, got {value!r}") from None
    return out


@envs_app.callback(invoke_without_command=True)
def envs_list(ctx: typer.Context) -> None:
    """List every environment with its context features: default, training range, physical bounds."""
    if ctx.invoked_subcommand is not None:
        return
    from wmlab.envs import ENV_SPECS

    for spec in ENV_SPECS.values():
        space = spec.context_space
        console.print(f"[bold cyan]{spec.name}[/bold cyan]  {spec.description}")
        console.print(
            f"  episode {spec.episode_steps} steps, state {spec.state_dim}, action {spec.action}, "
            f"evaluation grid {len(space.evaluation_grid())} contexts"
        )
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for column in ("feature", "default", "training range", "physical bounds", "what it changes"):
            table.add_column(column, style="dim" if column == "what it changes" else None)
        for f in space.features:
            alias = f" (alias {', '.join(f.aliases)})" if f.aliases else ""
            table.add_row(
                f"  {f.name}{alias}",
                f"{f.default:g}",
                f"[{f.train_range[0]:g}, {f.train_range[1]:g}]",
                f"({f.bounds[0]:g}, {f.bounds[1]:g})",
                escape(f.description),
            )
        console.print(table)
        console.print()
    console.print(
        "Training sets: default, single_0, single_1, double_box (100 contexts sampled per run seed). "
        "`wmlab envs show NAME --context feature=value` rolls one out."
    )


@envs_app.command("show")
def envs_show(
    name: str = typer.Argument(..., help="environment: walker, ball_in_cup, cartpole, pendulum"),
    more_context: Optional[list[str]] = typer.Argument(
        None, metavar="[FEATURE=VALUE]...", help="more context values, after --context"
    ),
    context: Optional[list[str]] = typer.Option(None, "--context", "-c", help="feature=value; missing take defaults"),
    obs: str = typer.Option("pixels", help="observation mode: state, pixels or both"),
    steps: int = typer.Option(200, help="random-policy steps to roll out"),
    size: int = typer.Option(128, help="image side in pixels"),
    seed: int = typer.Option(0, help="seed of the reset and of the random policy"),
    out: Optional[Path] = typer.Option(None, help="video path (.mp4 or .gif); default envs-<name>.mp4"),
    fps: float = typer.Option(30.0, help="video frame rate"),
) -> None:
    """Roll out a random policy in one context, write a video and print the physics actually in force."""
    from wmlab.envs.preview import preview_rollout
    from wmlab.media import write_video

    values = parse_assignments(list(context or []) + list(more_context or []))
    preview = preview_rollout(name, values, obs=obs, steps=steps, seed=seed, image_size=size)
    path = write_video(out or Path(f"envs-{name}.mp4"), preview.frames, fps=fps)
    console.print(f"[bold]{name}[/bold] context: {escape(json.dumps(preview.context))}")
    if preview.outside_training_range:
        console.print(
            f"[yellow]outside the training range (extrapolation): {', '.join(preview.outside_training_range)}[/yellow]"
        )
    console.print("physics in force:")
    for key, value in preview.physics.items():
        console.print(f"  {key}: {escape(str(value))}")
    console.print(f"{len(preview.rewards)} steps, return {preview.rewards.sum():.2f}; video: {path}")


train_app = typer.Typer(help="Train agents and world models.", no_args_is_help=True)
app.add_typer(train_app, name="train")


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
    run: Path = typer.Option(..., help="run directory; re-running the same command resumes it"),
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
    overrides = [_context_alias(arg) for arg in ctx.args]
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
) -> None:
    """Train (or reuse) the per-context experts and evaluate them and the random policy: ROOT/ENV/experts.json.
    Extra KEY=VALUE arguments override the experts' config."""
    from wmlab.eval.experts import build_expert_table, train_experts

    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    train_experts(env, root, seed_list, preset, steps, ctx.args)
    table = build_expert_table(env, root, seed_list, episodes, workers)
    for context, expert, random in zip(table.contexts, table.expert, table.random):
        console.print(f"  {escape(json.dumps(context))}: expert {expert:.1f}, random {random:.1f}")
    console.print(f"wrote {root / env / 'experts.json'}")


report_app = typer.Typer(help="Reports over trained runs.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("zero-shot")
def report_zero_shot_cmd(
    runs: list[Path] = typer.Argument(..., help="grid-evaluated contextual runs of one env and modality"),
    experts: Path = typer.Option(..., help="the expert table (experts/ENV/experts.json)"),
    out: Path = typer.Option(Path("report"), help="output folder"),
    reps: int = typer.Option(2000, help="bootstrap repetitions"),
    reference: Optional[str] = typer.Option(None, help="method for probability of improvement (default DALI-S)"),
) -> None:
    """Normalised scores, IQM / median / mean / optimality gap with CIs per region, plots and a markdown table."""
    from wmlab.analysis.zero_shot_report import zero_shot_report

    result = zero_shot_report(runs, experts, out, reps, reference)
    console.print((out / "zero_shot.md").read_text(), markup=False)
    console.print(
        f"wrote {out}/zero_shot.json, zero_shot.md, iqm.png" + (", improvement.png" if result["improvement"] else "")
    )


data_app = typer.Typer(help="Offline trajectory datasets: inspect, view, import, subset.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("info")
def data_info_cmd(path: Path = typer.Argument(..., help="a dataset folder (episode store)")) -> None:
    """Episodes per split, lengths, image size, action statistics, contact and block-moved fractions."""
    from wmlab.data.summary import summarize
    from wmlab.data.trajectories import EpisodeStore

    info = summarize(EpisodeStore.open(path))
    length, rel = info["length"], info["abs_rel_px"]
    console.print(f"[bold]{path}[/bold]  origin: {escape(str(info['origin']))}")
    console.print(
        f"  episodes: train {info['episodes']['train']}, val {info['episodes']['val']}; length "
        f"{length['min']}-{length['max']} (mean {length['mean']:.1f}); images {info['image_size']} px"
    )
    mean, std, padded = info["action_mean_px"], info["action_std_px"], info["action_std_padded_equivalent_px"]
    console.print(
        f"  relative actions (px, valid steps): mean ({mean[0]:.2f}, {mean[1]:.2f}), std ({std[0]:.2f}, "
        f"{std[1]:.2f}); padded-equivalent std ({padded[0]:.2f}, {padded[1]:.2f}); |rel| p50 "
        f"{rel['p50']:.1f}, p99 {rel['p99']:.1f}, max {rel['max']:.1f}"
    )
    contact = info["contact_fraction"]
    console.print(
        f"  block moved in {100 * info['block_moved_fraction']:.1f}% of episodes; agent-block contact in "
        + (f"{100 * contact:.1f}% of steps" if contact is not None else "(not recorded)")
    )


@data_app.command("show")
def data_show_cmd(
    path: Path = typer.Argument(..., help="a dataset folder"),
    episode: int = typer.Option(0, help="episode index"),
    out: Optional[Path] = typer.Option(None, help="video path (.mp4 or .gif); default episode-<i>.mp4"),
    fps: float = typer.Option(10.0, help="frames per second (the data are 10 Hz)"),
) -> None:
    """Write a video of one episode."""
    from wmlab.data.trajectories import EpisodeStore
    from wmlab.media import write_video

    frames = EpisodeStore.open(path).episode(episode, ("images",))["images"]
    console.print(f"wrote {write_video(out or Path(f'episode-{episode}.mp4'), frames, fps)} ({len(frames)} frames)")


@data_app.command("import-dinowm")
def data_import_cmd(
    source: Path = typer.Argument(..., help="a DINO-WM PushT dataset folder with train/ and val/"),
    out: Path = typer.Option(..., help="the episode store to write"),
) -> None:
    """Convert the original DINO-WM on-disk format (unpickles .pth/.pkl: import trusted data only). Resumable."""
    from wmlab.data.dinowm import import_dinowm

    store = import_dinowm(source, out)
    console.print(f"imported {store.num_episodes} episodes into {out}")


@data_app.command("subset")
def data_subset_cmd(
    source: Path = typer.Argument(..., help="the original DINO-WM dataset (its train/ split is sampled)"),
    out: Path = typer.Option(..., help="output folder, in the DINO-WM format"),
    n: int = typer.Option(10000, help="episodes in the subset: 1000 or 10000 reproduce the fork's subsets"),
    seed: int = typer.Option(0, help="recipe seed (the fork uses 0)"),
) -> None:
    """The fork's 1k / 10k subset recipe: 90/10 train/val drawn from the original train split."""
    from wmlab.data.dinowm import subset_dinowm

    info = subset_dinowm(source, out, n, seed)
    console.print(f"wrote {out}: {info['n_train']} train / {n - info['n_train']} val episodes")


def main() -> None:
    """Entry point: user mistakes are printed without a traceback and exit with status 2."""
    try:
        app()
    except WmlabError as e:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False)
        sys.exit(2)
