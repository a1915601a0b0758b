"""`wmlab envs`: list the contextual environments, or roll one out in a context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from wmlab.cli.app import app, console, parse_assignments

envs_app = typer.Typer(help="Contextual environments: list them, or look at one in a context.")
app.add_typer(envs_app, name="envs")


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
