"""Deterministic crash injection: run a writer in a forked child that dies like SIGKILL at its N-th write point.

A *write point* is the entry of one of the low-level calls through which every wmlab writer reaches the disk:
``os.replace`` (the commit of an atomic file write, zarr's included), ``os.fsync``, ``os.unlink`` and zarr's chunk /
metadata ``_put``. The child ends with ``os._exit``: no ``finally``, no ``except BaseException`` cleanup, no atexit
handler runs, exactly as after a real kill, so whatever the writer left on disk at that moment is what a re-run finds.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

KILLED = 137  # the child's exit status when it died at the chosen write point


def _write_points() -> list[tuple[object, str]]:
    points: list[tuple[object, str]] = [(os, "replace"), (os, "fsync"), (os, "unlink")]
    try:
        import zarr.storage._local as zarr_local

        points.append((zarr_local, "_put"))
    except ImportError:  # pragma: no cover - zarr is a dependency
        pass
    return points


def _instrument(on_call: Callable[[str], None]) -> None:
    """Wrap every write point so that ``on_call(name)`` runs at its entry (in this process only)."""
    for owner, name in _write_points():
        original = getattr(owner, name)

        def wrapped(*args, __original=original, __name=name, **kwargs):
            on_call(__name)
            return __original(*args, **kwargs)

        setattr(owner, name, wrapped)


def _in_child(body: Callable[[], None]) -> int:
    """Fork, run ``body`` in the child and return the child's exit status (0 done, KILLED, 1 exception)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            body()
        except BaseException:  # noqa: BLE001 - report, then leave without cleanup
            traceback.print_exc()
            status = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def count_write_points(writer: Callable[[], None], log: str | Path) -> int:
    """How many write points ``writer`` passes in an uninterrupted run (run in a child; ``log`` is a scratch file)."""
    log = Path(log)

    def body() -> None:
        calls = []
        _instrument(calls.append)
        writer()
        log.write_text(str(len(calls)))

    status = _in_child(body)
    if status != 0:
        raise AssertionError(f"the uninterrupted writer failed (exit {status})")
    return int(log.read_text())


def kill_at_write(writer: Callable[[], None], n: int) -> int:
    """Run ``writer`` in a child that dies at the entry of its ``n``-th write point (1-based). Returns the exit
    status: KILLED when it died there, 0 when it finished first, 1 when it raised."""

    def body() -> None:
        calls = [0]

        def maybe_die(_name: str) -> None:
            calls[0] += 1
            if calls[0] == n:
                os._exit(KILLED)

        _instrument(maybe_die)
        writer()

    return _in_child(body)
