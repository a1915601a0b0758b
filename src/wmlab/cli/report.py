"""`wmlab report` and `wmlab quickstart`: one readable report over any runs, and the whole tool in 15 minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from wmlab.cli.app import app, console


@app.command("report")
def report_cmd(
    runs: list[Path] = typer.Argument(..., help="run directories: contextual Dreamer runs and/or latent world models"),
    out: Path = typer.Option(Path("report"), help="output folder (report.html, report.md, zero_shot/)"),
    experts: Optional[Path] = typer.Option(
        None, help="expert table (experts/ENV/experts.json): adds the zero-shot report of grid-evaluated runs"
    ),
    title: str = typer.Option("wmlab report", help="report title"),
    reps: int = typer.Option(2000, help="bootstrap repetitions of the zero-shot confidence intervals"),
    reference: Optional[str] = typer.Option(None, help="method for probability of improvement (default DALI-S)"),
) -> None:
    """A self-contained HTML report (tables, learning curves, zero-shot IQM with CIs, planning success, videos) and a
    markdown summary. With --experts, the zero-shot report of spec §9 goes to OUT/zero_shot/ (zero_shot.md, .json,
    iqm.png, improvement.png)."""
    from wmlab.analysis.report import build_report

    path = build_report(runs, out, experts, title, reps=reps, reference=reference)
    if experts is not None and (out / "zero_shot" / "zero_shot.md").exists():
        console.print((out / "zero_shot" / "zero_shot.md").read_text(), markup=False)
    console.print(f"wrote {path} and {out / 'report.md'}")


@app.command("quickstart")
def quickstart_cmd(
    out: Path = typer.Option(Path("quickstart"), help="output folder (runs, data, report); re-running continues"),
    budget: float = typer.Option(1.0, help="scales steps, episodes and goals; 1.0 takes about 15 min on 2 CPU cores"),
    jobs: int = typer.Option(2, help="processes trained side by side"),
) -> None:
    """Train and evaluate small versions of both systems (pendulum Dreamer vs DALI-S with zero-shot evaluation and a
    counterfactual video; PushT action / la / la-vq world models with planning), then write OUT/report.html."""
    from wmlab.quickstart import quickstart

    quickstart(out, budget, jobs, console)
