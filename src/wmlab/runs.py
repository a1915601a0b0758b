"""Run directories: layout, resume, JSONL + TensorBoard metrics, atomic checkpoints, seeding (progress: progress.py).

A run directory holds::

    config.yaml      the full config the run was started with (re-running checks it matches)
    metrics.jsonl    one JSON object per logged step, always on
    tb/              TensorBoard event files
    checkpoints/     ckpt-<step>.pt, written atomically; the newest readable one is resumed from
    replay/          replay buffer chunks (online runs)
    videos/          MP4 / GIF outputs
    results/         evaluation outputs (eval.jsonl, ...)

Re-running the same command on the same directory resumes it.
"""

from __future__ import annotations

import json
import math
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from wmlab.atomic import atomic_torch_save, atomic_write_text, remove_stale_temporaries
from wmlab.config import diff, load_config, save_config, to_dict
from wmlab.errors import WmlabError, WmlabWarning

T = TypeVar("T")
_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.pt$")


class RunDir:
    """Paths of one run directory (see the module docstring for the layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.yaml")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    tb_dir = property(lambda self: self.path / "tb")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    replay_dir = property(lambda self: self.path / "replay")
    videos_dir = property(lambda self: self.path / "videos")
    results_dir = property(lambda self: self.path / "results")

    def exists(self) -> bool:
        """True when a run was started here (its config was written)."""
        return self.config_path.exists()

    def create(self, config: Any) -> None:
        """Make the folders and write ``config.yaml`` (atomically)."""
        for folder in (self.checkpoints_dir, self.replay_dir, self.videos_dir, self.results_dir, self.tb_dir):
            folder.mkdir(parents=True, exist_ok=True)
        save_config(config, self.config_path)

    def load_config(self, cls: type[T]) -> T:
        if not self.exists():
            raise WmlabError(f"{self.path} is not a wmlab run directory (no config.yaml); check the path")
        return load_config(cls, self.config_path)

    def kind(self) -> str | None:
        """``dreamer`` or ``latent`` (None when config.yaml names neither), read from config.yaml's sections."""
        import yaml

        if not self.exists():
            raise WmlabError(f"{self.path} is not a wmlab run directory (no config.yaml); check the path")
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise WmlabError(
                f"{self.config_path} is not valid YAML ({type(e).__name__}); restore it or start a new run"
            ) from None
        if not isinstance(data, Mapping):
            raise WmlabError(f"{self.config_path} is not a wmlab config (not a mapping); restore it or start a new run")
        return next((kind for kind, section in RUN_KIND_SECTIONS.items() if section in data), None)

    def require_kind(self, kind: str) -> None:
        """Refuse, in one line, a run of another kind than the command needs (``plan`` on a Dreamer run, ...)."""
        found = self.kind()
        if found != kind:
            what = f"a {found} run" if found else "neither a dreamer nor a latent run"
            raise WmlabError(f"{self.path} is {what}; this command needs a {kind} run ({RUN_KIND_HINTS[kind]})")


#: the config.yaml section only that kind of run has (how a command tells a Dreamer run from a latent one)
RUN_KIND_SECTIONS = {"dreamer": "behavior", "latent": "data"}
RUN_KIND_HINTS = {"dreamer": "made by `wmlab train dreamer`", "latent": "made by `wmlab train latent`"}


def open_run(path: str | Path, config: T, resume_may_change: tuple[str, ...] = ()) -> tuple[RunDir, bool]:
    """Create run directory ``path`` for ``config``, or reopen it to resume.

    Returns (run, resumed). Reopening with a different config is an error naming the differing keys, except keys
    listed in ``resume_may_change`` (a longer step budget, say), whose new values are written to ``config.yaml``.
    """
    run = RunDir(path)
    if not run.exists():
        if run.path.exists() and any(run.path.iterdir()):
            raise WmlabError(f"{run.path} exists, is not empty and is not a wmlab run; choose another --run folder")
        run.create(config)
        return run, False
    old = run.load_config(type(config))
    changed = [k for k in diff(old, config) if not any(k == p or k.startswith(p + ".") for p in resume_may_change)]
    if changed:
        old_d, new_d = to_dict(old), to_dict(config)

        def get(d: Mapping, key: str) -> Any:
            for part in key.split("."):
                d = d.get(part, {}) if isinstance(d, Mapping) else None
            return d

        detail = ", ".join(f"{k}: {get(old_d, k)!r} -> {get(new_d, k)!r}" for k in changed)
        raise WmlabError(
            f"{run.path} holds a run with a different config ({detail}). Re-run with the same options to resume it, "
            "or pass a new --run folder to start another run"
        )
    save_config(config, run.config_path)
    # temporary files of writes a kill interrupted (config, metrics, checkpoints, replay chunks, results): the run
    # being resumed is their only writer
    for folder in (run.path, run.checkpoints_dir, run.replay_dir, run.results_dir):
        remove_stale_temporaries(folder)
    return run, True


class Checkpointer:
    """Numbered checkpoints in a folder, written atomically; keeps the newest ``keep``.

    Args:
        directory: the run's ``checkpoints/``.
        keep: how many checkpoints to keep (older ones are deleted after a successful write).
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory)
        self.keep = keep

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files of checkpoint writes that a kill interrupted (``.ckpt-*.pt.*.tmp``); at paper
        scale each is gigabytes. Only one process writes a run's checkpoints, so none of them is still in use."""
        return remove_stale_temporaries(self.directory, "ckpt-")

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.directory.exists():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _CHECKPOINT.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest_step(self) -> int:
        """The step of the newest checkpoint file (0 when there is none), read from its name."""
        paths = self.paths()
        return int(_CHECKPOINT.match(paths[-1].name)[1]) if paths else 0

    def save(self, step: int, state: Mapping[str, Any]) -> Path:
        path = self.directory / f"ckpt-{step:012d}.pt"
        self.remove_stale_temporaries()
        atomic_torch_save(dict(state), path)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: str = "cpu") -> dict[str, Any] | None:
        """The newest readable checkpoint, or None if there is none. An unreadable newest file is skipped with a
        :class:`WmlabWarning` (it is kept on disk for inspection); if none is readable, a :class:`WmlabError` says so.
        Reads only: an evaluation may run beside a training that is writing its next checkpoint."""
        import torch

        paths = self.paths()
        for path in reversed(paths):
            try:
                return torch.load(path, map_location=map_location, weights_only=False)
            except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                warnings.warn(
                    f"checkpoint {path} is unreadable ({type(e).__name__}: {reason}); using the one before it",
                    WmlabWarning,
                    stacklevel=2,
                )
        if paths:
            raise WmlabError(
                f"no readable checkpoint in {self.directory} ({len(paths)} damaged); move them away to start over"
            )
        return None


class MetricLogger:
    """Scalars to ``metrics.jsonl`` (always) and TensorBoard (optional).

    Args:
        run: the run directory.
        tensorboard: also write TensorBoard event files to ``tb/``.
    """

    def __init__(self, run: RunDir, tensorboard: bool = True):
        self.run = run
        self.run.path.mkdir(parents=True, exist_ok=True)
        self._file = open(run.metrics_path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run.tb_dir), flush_secs=30)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one record ``{"step": step, **metrics}``; non-finite values are written as null."""
        clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
        self._file.write(json.dumps({"step": int(step), **clean}) + "\n")
        if self._tb is not None:
            for key, value in clean.items():
                if value is not None:
                    self._tb.add_scalar(key, value, int(step))

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``; a torn last line (killed mid-write) is ignored."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(path: str | Path, after_step: int) -> int:
    """Drop records logged after ``after_step``: on resume they belong to work that was lost with the process.
    Returns the last step that was logged before (0 without records), for the resume line."""
    path = Path(path)
    if not path.exists():
        return 0
    records = read_metrics(path)
    kept = [r for r in records if r.get("step", 0) <= after_step]
    # rewritten even when nothing is dropped: a line torn by a kill would swallow the next appended record
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return max((r.get("step", 0) for r in records), default=0)


def seed_everything(seed: int) -> tuple[np.random.Generator, Any]:
    """Seed Python, NumPy and torch globally, and return explicit (numpy, torch) generators derived from ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)
