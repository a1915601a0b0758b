"""Progress display: a rich bar on a terminal; plain, flushed lines in a log file (nohup, a cluster job, a pipe).

Every long command reports through :func:`progress_bar` and :func:`say`, so that its output is readable both live
and in a job's log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def output_is_terminal() -> bool:
    """True when standard output is an interactive terminal (a progress bar redraws); False under nohup, a cluster
    job or a pipe, where :func:`progress_bar` prints plain lines instead."""
    return sys.stdout.isatty()


def say(text: str, enabled: bool = True) -> None:
    """Print one plain status line to standard output (never wrapped, flushed at once, so a log file shows it)."""
    if enabled:
        print(text, flush=True)


def _format_stats(stats: Mapping[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items())


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@contextmanager
def progress_bar(
    description: str,
    total: float | None,
    unit: str = "steps",
    enabled: bool = True,
    plain_every: float | None = 30.0,
) -> Iterator[Any]:
    """A rich progress bar; yields ``update(advance, line=False, **stats)`` which also shows the latest stats.

    When standard output is not a terminal (nohup, a cluster job, a pipe), no bar is drawn; instead one plain line
    (``description: done/total unit (pct), elapsed, eta, stats``) is printed whenever ``update`` is called with
    ``line=True`` (a trainer's logging step), at most every ``plain_every`` seconds otherwise (None: only on
    ``line=True``), and once at the end. With ``enabled=False`` nothing is shown and ``update`` does nothing, so
    callers need no second code path.
    """
    if not enabled:
        yield lambda *args, **kwargs: None
        return
    if not output_is_terminal():
        yield from _plain_progress(description, total, unit, plain_every)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
    ]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total, stats="")

        def update(advance: float = 1, line: bool = False, **stats: Any) -> None:
            bar.update(task, advance=advance, **({"stats": _format_stats(stats)} if stats else {}))

        yield update


def _plain_progress(description: str, total: float | None, unit: str, every: float | None) -> Iterator[Any]:
    """The non-terminal form of :func:`progress_bar`: plain, flushed lines."""
    state = {"done": 0.0, "first": None, "stats": {}, "printed_at": time.monotonic(), "printed_done": None}
    start = time.monotonic()

    def emit() -> None:
        now = time.monotonic()
        done = state["done"]
        text = f"{description}: {done:g}" + (f"/{total:g}" if total else "") + f" {unit}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        text += f", elapsed {_duration(now - start)}"
        first = state["first"]  # rate over this session's work only: a resumed run starts part-way
        if total and first is not None and done > first and done < total:
            text += f", eta {_duration((total - done) * (now - start) / (done - first))}"
        if state["stats"]:
            text += "  " + _format_stats(state["stats"])
        print(text, flush=True)
        state["printed_at"], state["printed_done"] = now, done

    def update(advance: float = 1, line: bool = False, **stats: Any) -> None:
        state["done"] += advance
        if state["first"] is None:  # the first call advances to where a resumed job starts
            state["first"] = state["done"]
        if stats:
            state["stats"] = stats
        if line or (every is not None and time.monotonic() - state["printed_at"] >= every):
            emit()

    yield update
    if state["printed_done"] != state["done"]:
        emit()


def start_line(
    what: str,
    unit: str,
    target: int,
    checkpoint_step: int | None,
    resumed: bool,
    logged_until: int,
    redone: str,
    notes: list[str],
) -> str:
    """The line a trainer prints at start: ``what``, then "fresh run" or the checkpoint it resumes from, the logged
    steps after it that are redone (``redone`` says how), and ``notes``: every way the resumed run differs from an
    uninterrupted one. ``unit`` is "env steps" or "steps"; ``logged_until`` is the last step in metrics.jsonl."""
    if checkpoint_step is None:
        again = " (no checkpoint was written: starting over)" if resumed else ""
        return f"{what}: fresh run, {target} {unit}{again}"
    line = f"{what}: resumed from the checkpoint at {checkpoint_step} {unit} (target {target})"
    if logged_until > checkpoint_step:
        line += f"; {unit} {checkpoint_step}-{logged_until} logged after it were lost and are {redone}"
    return "; ".join([line, *notes])
