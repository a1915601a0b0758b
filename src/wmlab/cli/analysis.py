"""`wmlab analyze context|counterfactual|plausibility|traversal RUN`: the analyses of spec/dali.md §10.

Results go to RUN/analysis/<analysis>/ (JSON, PNG, MP4). Budgets default to a 2-core CPU; raise them for the paper's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from wmlab.cli.app import app, console, parse_assignments

analyze_app = typer.Typer(
    help="Analyses of trained contextual runs (context probe, counterfactuals).", no_args_is_help=True
)
app.add_typer(analyze_app, name="analyze")

RUN = typer.Argument(..., help="a trained Dreamer run directory (its newest checkpoint is analysed)")
CONTEXT = typer.Option(None, "--context", "-c", help="feature=value of the analysed context; default: defaults")
SEED = typer.Option(0, help="seed of the episodes, the imagination noise and the classifiers")
MAX_STEPS = typer.Option(None, help="cap on the recorded episode length (default: the environment's)")
UNITS = typer.Option("sigma", help="sigma (m sigma_d, spec §10.4) or abs (absolute offsets)")
LATENT = typer.Option("mode", help="mode (prior mode) or sample (seeded common random numbers)")
SIGMA = typer.Option("auto", help="auto | recording | grid | PATH.npz (a saved recording)")
PROGRESS = typer.Option(True, help="show progress bars")


def _out(run: Path, name: str, out: Optional[Path]) -> Path:
    return out if out is not None else run / "analysis" / name


@analyze_app.command("context")
def context_cmd(
    run: Path = RUN,
    contexts: str = typer.Option("tsne", help="tsne (the 6-8 contexts of spec §10.3) | grid (all) | default"),
    episodes: int = typer.Option(2, help="episodes per context (>= 2: the probe holds out whole episodes)"),
    max_steps: Optional[int] = MAX_STEPS,
    tsne: bool = typer.Option(True, help="draw the t-SNE maps"),
    max_points: int = typer.Option(3000, help="t-SNE points per panel at most"),
    seed: int = SEED,
    out: Optional[Path] = typer.Option(None, help="output folder (default RUN/analysis/context)"),
    progress: bool = PROGRESS,
) -> None:
    """Record contexts and latents, probe the GT context (ridge R^2 on held-out episodes), draw t-SNE maps."""
    from wmlab.analysis.probe import context_analysis

    folder = _out(run, "context", out)
    result = context_analysis(
        run, contexts, episodes, max_steps, seed, tsne, max_points, out=folder, show_progress=progress
    )
    for name, probe in result["probe"].items():
        scores = ", ".join(f"{f} {v:.3f}" if v is not None else f"{f} n/a" for f, v in probe["r2"].items())
        console.print(f"  R^2 from {name} ({probe['dim']}-d, {probe['n_test']} test steps): {scores}")
    console.print(f"wrote {folder}: {', '.join(result['files'])}")


@analyze_app.command("counterfactual")
def counterfactual_cmd(
    run: Path = RUN,
    dim: int = typer.Option(..., "--dim", help="context dimension to shift (0-based)"),
    m: float = typer.Option(3.0, "--m", help="shift in units of sigma_d (or absolute with --units abs)"),
    episodes: int = typer.Option(4, help="recorded episodes (spec: 150)"),
    horizon: int = typer.Option(64, help="imagined steps H"),
    stride: int = typer.Option(100, help="steps between start points t0 = K - 1 + i stride"),
    context: Optional[list[str]] = CONTEXT,
    units: str = UNITS,
    latent: str = LATENT,
    sigma_source: str = SIGMA,
    videos: int = typer.Option(3, help="start points shown in the video (pixel runs)"),
    max_steps: Optional[int] = MAX_STEPS,
    seed: int = SEED,
    out: Optional[Path] = typer.Option(None, help="output folder (default RUN/analysis/counterfactual)"),
    progress: bool = PROGRESS,
) -> None:
    """Imagine from real states with one context dimension shifted by +-m sigma; plots (and videos for pixels)."""
    from wmlab.analysis.counterfactual import counterfactual_analysis

    folder = _out(run, "counterfactual", out)
    result = counterfactual_analysis(
        run, dim, m, episodes, horizon, stride, parse_assignments(list(context or [])), units, latent, sigma_source,
        max_steps, videos, seed, folder, progress,
    )  # fmt: skip
    console.print(
        f"{result['label']} shifted by ±{result['offset']:.3g} from {result['starts']} starts: mean |effect| "
        f"{result['effect_plus']['mean']:.4g} (+), {result['effect_minus']['mean']:.4g} (-)"
    )
    console.print(f"wrote {folder}/d{dim}.*")


@analyze_app.command("plausibility")
def plausibility_cmd(
    run: Path = RUN,
    m: float = typer.Option(3.0, "--m", help="shift in units of sigma_d (or absolute with --units abs)"),
    episodes: int = typer.Option(10, help="recorded episodes (spec: 150)"),
    horizon: int = typer.Option(64, help="imagined steps H"),
    stride: int = typer.Option(100, help="steps between start points"),
    context: Optional[list[str]] = CONTEXT,
    sign: str = typer.Option("per_trajectory", help="per_trajectory | per_step (release) | fixed"),
    units: str = UNITS,
    latent: str = LATENT,
    sigma_source: str = SIGMA,
    max_trajectories: int = typer.Option(2000, help="trajectory pairs at most"),
    folds: int = typer.Option(5, help="cross-validation folds"),
    reps: int = typer.Option(500, help="bootstrap resamples of the AUC"),
    ensemble: str = typer.Option("fast", help="fast (logistic + random forest) | paper (SVM + MLP + AdaBoost)"),
    max_steps: Optional[int] = MAX_STEPS,
    seed: int = SEED,
    out: Optional[Path] = typer.Option(None, help="output folder (default RUN/analysis/plausibility)"),
    progress: bool = PROGRESS,
) -> None:
    """AUC (bootstrap CI) of a classifier ensemble separating imagined vs perturbed trajectories, per dimension."""
    from wmlab.analysis.plausibility import plausibility_analysis

    folder = _out(run, "plausibility", out)
    result = plausibility_analysis(
        run, m, episodes, horizon, stride, parse_assignments(list(context or [])), sign, units, latent, sigma_source,
        max_trajectories, folds, reps, ensemble, max_steps=max_steps, seed=seed, out=folder, show_progress=progress,
    )  # fmt: skip
    for d in result["dimensions"]:
        console.print(f"  {d['label']}: AUC {d['auc']:.3f} [{d['low']:.3f}, {d['high']:.3f}]")
    console.print(
        f"most influential: {result['most_influential_label']} ({result['trajectories']} pairs); "
        f"wrote {folder}/plausibility.json, plausibility.png"
    )


@analyze_app.command("traversal")
def traversal_cmd(
    run: Path = RUN,
    dim: Optional[list[int]] = typer.Option(None, "--dim", help="dimension(s) (default: most influential, or all)"),
    ms: str = typer.Option("-3,-2,-1,0,1,2,3", help="comma-separated multiples of sigma"),
    horizon: int = typer.Option(50, help="imagined steps"),
    episodes: int = typer.Option(2, help="recorded episodes (sigma); the start is in the first"),
    actions: str = typer.Option("policy", help="policy (sampled from the actor) | zero (open loop)"),
    context: Optional[list[str]] = CONTEXT,
    units: str = UNITS,
    latent: str = LATENT,
    sigma_source: str = SIGMA,
    max_steps: Optional[int] = MAX_STEPS,
    seed: int = SEED,
    out: Optional[Path] = typer.Option(None, help="output folder (default RUN/analysis/traversal)"),
    progress: bool = PROGRESS,
) -> None:
    """Imagined behaviour and actions of the policy as one context dimension is traversed."""
    from wmlab.analysis.traversal import traversal_analysis
    from wmlab.errors import WmlabError

    try:
        values = [float(v) for v in ms.split(",") if v.strip()]
    except ValueError:
        raise WmlabError(f"--ms takes comma-separated numbers like -3,0,3, got {ms!r}") from None
    folder = _out(run, "traversal", out)
    result = traversal_analysis(
        run, dim, values, horizon, episodes, actions, parse_assignments(list(context or [])), units, latent,
        sigma_source, max_steps, seed, folder, progress,
    )  # fmt: skip
    for d in result["dimensions"]:
        diffs = ", ".join(f"{k} {v:.3f}" for k, v in d["action_difference"].items())
        console.print(f"  {d['label']}: mean |action - action(m=0)|: {diffs}")
    console.print(f"wrote {folder}/traversal.json and per-dimension plots")
