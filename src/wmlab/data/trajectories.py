"""Offline trajectory store: one zarr group per dataset, episodes flat and unpadded.

Layout::

    images        (sum T, S, S, 3) uint8     chunked along time
    states        (sum T, 5) float32         [agent_x, agent_y, block_x, block_y, block_angle mod 2 pi]
    velocities    (sum T, 2) float32         agent velocity, px/s
    rel_actions   (sum T, 2) float32         relative action a_t (px), applied after observing o_t
    abs_actions   (sum T, 2) float32         PD target (px)
    episode_ends  (N,) int64                 cumulative lengths
    split         (N,) int8                  0 train, 1 val
    attrs         env parameters, origin, the commit record, statistics and ``complete``

Commit protocol. A writer killed at any instant (even SIGKILL) leaves a store that a re-run of the same command
resumes to exactly the data of an uninterrupted run, and no reader ever sees part of an episode:

- :meth:`EpisodeStore.create` builds the empty store in a hidden sibling folder and renames it into place, so a
  store either exists whole (arrays, attrs, an empty commit record) or not at all.
- :meth:`EpisodeStore.append_episode` writes the episode's rows at explicit positions of every array, then its
  ``split`` label and ``episode_ends`` entry, and last the commit record ``attrs["committed"] = {"episodes": N,
  "rows": sum T, "extra": {...}}`` (``extra``: the writer's running totals, committed with the episode). The record
  is one rewrite of the group's ``zarr.json``; zarr's LocalStore (>= 3.1.3) writes every key to a temporary file
  and renames it over the old one, so the record changes atomically. The same rename makes rewriting a partly
  filled chunk that also holds earlier, committed episodes safe: the chunk is old or new, never torn. (Atomic
  against a killed process; nothing is fsync'd, so a power cut may still lose the last writes.)
- Readers trust only the commit record: the arrays may be longer than it says after a kill, and the extra rows
  are invisible. :meth:`EpisodeStore.resume` trims every array back to the record and removes zarr's leftover
  ``*.partial`` temporary files; :meth:`EpisodeStore.finalize` writes the statistics and ``complete: true`` in one
  atomic rewrite. :meth:`EpisodeStore.open` refuses a store that is not complete.

Stores written before the commit record existed are still read: their episode count comes from ``episode_ends``
(validated), and resuming one keeps its longest prefix of whole episodes and adds the record.

New arrays are compressed with zstd and its content checksum, so a chunk whose bytes were overwritten fails to
decode instead of returning wrong pixels; :meth:`EpisodeStore.check` reads every chunk and names the damaged
episodes (``wmlab data info PATH --check``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.errors import WmlabError

SPLITS = ("train", "val")
VECTOR_FIELDS = {"states": 5, "velocities": 2, "rel_actions": 2, "abs_actions": 2}
FIELDS = ("images", *VECTOR_FIELDS)  # per-step arrays, (sum T, ...)
PER_EPISODE = ("episode_ends", "split")  # per-episode arrays, (N,)
IMAGE_CHUNK = 64  # frames per chunk: an episode of ~125 steps is read in about two chunks
COMMIT = "committed"
_ZARR_TEMP = re.compile(r"\.[0-9a-f]{32}\.partial$")  # zarr's temporary files: <key>.<uuid4 hex>.partial
_RECREATE = "re-create the dataset (re-run the collect / import command with a new --out) or restore it from a copy"


def _zarr():
    import zarr

    return zarr


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:160] if lines else ''}"


@dataclass(frozen=True)
class Damage:
    """A chunk that does not decode: its ``file``, the committed ``episodes`` it holds as (index, split), the error."""

    file: Path
    episodes: tuple[tuple[int, str], ...]
    error: str

    def describe(self) -> str:
        shown = ", ".join(f"{i} ({split})" for i, split in self.episodes[:8])
        more = f" and {len(self.episodes) - 8} more" if len(self.episodes) > 8 else ""
        held = f"episodes {shown}{more}" if self.episodes else "no committed episode"
        return f"{self.file} does not decode ({self.error}; holds {held})"


def damage_message(path: Path, damages: list[Damage], checked: bool = False) -> str:
    """One line for a :class:`WmlabError`: which files and episodes are damaged (all of them if ``checked``), and
    what to do."""
    shown = "; ".join(d.describe() for d in damages[:4])
    more = f"; and {len(damages) - 4} more damaged chunks" if len(damages) > 4 else ""
    count = len({e for d in damages for e in d.episodes})
    scan = "" if checked else f"`wmlab data info {path} --check` lists every damaged chunk; "
    return f"{path} is damaged ({count} episodes): {shown}{more}; {scan}{_RECREATE}"


class EpisodeStore:
    """A dataset of episodes. Open existing stores with :meth:`open`; write new ones with :meth:`create`."""

    def __init__(self, path: str | Path, group: Any, arrays: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.group = group
        self._arrays = dict(arrays) if arrays is not None else {name: group[name] for name in (*FIELDS, *PER_EPISODE)}

    # -- creation and validation ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, image_size: int, attrs: Mapping[str, Any]) -> EpisodeStore:
        """A new, empty, incomplete store. Refuses to overwrite an existing one."""
        from zarr.codecs import ZstdCodec

        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise WmlabError(f"{path} already exists; choose another --out or delete it to start over")
        staging = path.parent / f".{path.name}.creating"
        if staging.exists():  # left by a writer killed while creating: nothing in it was ever visible
            shutil.rmtree(staging)
        group = _zarr().open_group(str(staging), mode="w")
        # the checksum makes overwritten bytes fail to decode instead of reading as wrong data
        zstd = ZstdCodec(level=0, checksum=True)
        rows = {"images": ((image_size, image_size, 3), "uint8", IMAGE_CHUNK), "episode_ends": ((), "int64", 4096)}
        rows |= {name: ((dim,), "float32", 4096) for name, dim in VECTOR_FIELDS.items()} | {"split": ((), "int8", 4096)}
        for name, (row, dtype, chunk) in rows.items():
            group.create_array(name, shape=(0, *row), dtype=dtype, chunks=(chunk, *row), compressors=zstd)
        record = {"episodes": 0, "rows": 0, "extra": {}}
        group.update_attributes({**dict(attrs), "image_size": image_size, "complete": False, COMMIT: record})
        os.replace(staging, path)  # the store appears whole (an empty target folder is replaced too)
        return cls._open(path, writable=True)

    @classmethod
    def open(cls, path: str | Path, writable: bool = False) -> EpisodeStore:
        """Open a complete store; incomplete or inconsistent stores are refused with the way to fix them."""
        store = cls._open(path, writable)
        if not store.group.attrs.get("complete", False):
            raise WmlabError(
                f"{path} is an incomplete dataset (its writer was interrupted); re-run the same "
                "collect / import command to resume it, or delete the folder"
            )
        store.validate()
        return store

    @classmethod
    def resume(cls, path: str | Path) -> EpisodeStore:
        """Reopen an incomplete store for appending: cut everything after the last committed episode."""
        store = cls._open(path, writable=True)
        if store.group.attrs.get("complete", False):
            raise WmlabError(f"{path} is already complete; nothing to resume (use another --out for a new dataset)")
        for file in store.path.rglob("*.partial"):
            if _ZARR_TEMP.search(file.name):
                file.unlink(missing_ok=True)
        if COMMIT not in store.group.attrs:
            store._adopt_whole_episodes()
        store.validate(exact=False)
        record = store.committed
        for names, size in ((FIELDS, record["rows"]), (PER_EPISODE, record["episodes"])):
            for name in names:
                array = store._arrays[name]
                if array.shape[0] != size:
                    array.resize((size, *array.shape[1:]))
        return store

    @classmethod
    def _open(cls, path: str | Path, writable: bool) -> EpisodeStore:
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise WmlabError(
                f"no dataset at {path}; create one with `wmlab collect pusht --out {path}` or "
                "`wmlab data import-dinowm SRC --out PATH`"
            )
        try:
            group = _zarr().open_group(str(path), mode="r+" if writable else "r")
        except Exception as e:  # noqa: BLE001 - zarr raises many types for damaged metadata
            raise WmlabError(f"{path / 'zarr.json'} is damaged ({_short(e)}); {_RECREATE}") from None
        missing = [name for name in (*FIELDS, *PER_EPISODE) if not (path / name / "zarr.json").exists()]
        if missing:
            raise WmlabError(f"{path} is damaged: missing arrays {missing}; {_RECREATE}")
        arrays = {}
        for name in (*FIELDS, *PER_EPISODE):
            try:
                arrays[name] = group[name]
            except Exception as e:  # noqa: BLE001
                raise WmlabError(f"{path / name / 'zarr.json'} is damaged ({_short(e)}); {_RECREATE}") from None
        return cls(path, group, arrays)

    def _adopt_whole_episodes(self) -> None:
        """Give a store written before the commit record one: its longest prefix of whole episodes."""
        ends = np.asarray(self._arrays["episode_ends"][:])
        limit = min(len(ends), self._arrays["split"].shape[0])
        rows = min(self._arrays[name].shape[0] for name in FIELDS)
        count, total = 0, 0
        # a writer killed inside the old append left a last entry of 0 (or any value not past the previous one)
        while count < limit and total < ends[count] <= rows:
            total, count = int(ends[count]), count + 1
        self.group.update_attributes({COMMIT: {"episodes": count, "rows": total, "extra": {}}})

    def validate(self, exact: bool = True) -> None:
        """Check the arrays against the commit record: exactly as long (``exact``) or at least as long (a store that
        is being resumed), ``episode_ends`` strictly increasing up to the committed rows, labels 0 or 1."""
        record = self.committed
        problems = []
        for names, size in ((FIELDS, record["rows"]), (PER_EPISODE, record["episodes"])):
            for name in names:
                rows = self._arrays[name].shape[0]
                if rows < size or (exact and rows != size):
                    problems.append(f"{name} has {rows} rows, the committed episodes need {size}")
        if not problems:
            ends = self.episode_ends
            if (np.diff(np.concatenate([[0], ends])) <= 0).any():
                problems.append("episode_ends is not strictly increasing")
            elif (int(ends[-1]) if len(ends) else 0) != record["rows"]:
                problems.append(f"episode_ends ends at {ends[-1] if len(ends) else 0}, not at {record['rows']}")
            if not np.isin(self.read("split", 0, record["episodes"]), (0, 1)).all():
                problems.append("split holds labels other than 0 (train) and 1 (val)")
        if problems:
            raise WmlabError(f"{self.path} is inconsistent: {'; '.join(problems)}; {_RECREATE}")

    # -- writing ----------------------------------------------------------------------------------------------------
    def append_episode(
        self, episode: Mapping[str, np.ndarray], split: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        """Append one episode: ``images`` (T, S, S, 3) uint8 and the vector fields (T, D), then commit it.

        ``extra`` (JSON values; None keeps the last) is committed with the episode: running totals a resumed writer
        continues from, read back as ``committed["extra"]``.
        """
        if split not in SPLITS:
            raise WmlabError(f"split must be one of {SPLITS}, got {split!r}")
        length = len(episode["images"])
        if length == 0 or any(len(episode[name]) != length for name in VECTOR_FIELDS):
            raise WmlabError(f"an episode needs equal, non-zero lengths for {FIELDS}")
        data = {name: np.asarray(episode[name], dtype=self._arrays[name].dtype) for name in FIELDS}
        for name, values in data.items():
            if values.shape[1:] != self._arrays[name].shape[1:]:
                raise WmlabError(
                    f"episode {name} has rows {values.shape[1:]}, the dataset {self._arrays[name].shape[1:]}"
                )
        record = self.committed
        count, rows = record["episodes"], record["rows"]
        for name, values in data.items():
            self._write(name, rows, values)
        self._write("split", count, np.array([SPLITS.index(split)], np.int8))
        self._write("episode_ends", count, np.array([rows + length], np.int64))
        extra = record["extra"] if extra is None else dict(extra)
        # the commit: one atomic rewrite of zarr.json makes the whole episode (and the totals) visible at once
        self.group.update_attributes({COMMIT: {"episodes": count + 1, "rows": rows + length, "extra": extra}})

    def _write(self, name: str, start: int, values: np.ndarray) -> None:
        """Rows [start, start + len(values)) of one array, sized to end there (rows past the record are not data)."""
        array = self._arrays[name]
        end = start + len(values)
        if array.shape[0] != end:
            array.resize((end, *array.shape[1:]))
        array[start:end] = values

    def finalize(self, extra_attrs: Mapping[str, Any] | None = None) -> None:
        """Compute the statistics over valid train steps and mark the store complete, in one atomic write."""
        self.validate()
        statistics = self.compute_statistics()
        self.group.update_attributes({**dict(extra_attrs or {}), "statistics": statistics, "complete": True})

    def compute_statistics(self) -> dict[str, Any]:
        """Mean and std of relative actions (/100) and states over the valid steps of the train split."""
        train = self.episode_indices("train")
        rows = np.concatenate([np.arange(*self.bounds(i)) for i in train]) if len(train) else np.zeros(0, int)
        actions = self.read("rel_actions")[rows] / 100.0
        states = self.read("states")[rows]
        return {
            "action_mean": actions.mean(0).tolist(),
            "action_std": actions.std(0).tolist(),
            "state_mean": states.mean(0).tolist(),
            "state_std": states.std(0).tolist(),
            "computed_over": "valid steps of the train split",
            "train_steps": int(len(rows)),
        }

    # -- reading ----------------------------------------------------------------------------------------------------
    @property
    def committed(self) -> dict[str, Any]:
        """The commit record ``{"episodes": N, "rows": sum T, "extra": {...}}``; for a store written before it
        existed, derived from ``episode_ends``."""
        record = self.group.attrs.get(COMMIT)
        if record is None:
            ends = self._arrays["episode_ends"]
            count = ends.shape[0]
            try:
                rows = int(ends[count - 1]) if count else 0
            except Exception as e:  # noqa: BLE001 - not through read(): locating the damage needs this record
                raise WmlabError(
                    damage_message(self.path, [Damage(self.path / "episode_ends", (), _short(e))])
                ) from None
            return {"episodes": count, "rows": rows, "extra": {}}
        return {"episodes": int(record["episodes"]), "rows": int(record["rows"]), "extra": dict(record["extra"])}

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def episode_ends(self) -> np.ndarray:
        """(N,) int64 cumulative lengths of the committed episodes."""
        return self.read("episode_ends", 0, self.num_episodes)

    @property
    def num_episodes(self) -> int:
        return self.committed["episodes"]

    @property
    def lengths(self) -> np.ndarray:
        """(N,) episode lengths."""
        return np.diff(np.concatenate([[0], self.episode_ends])).astype(np.int64)

    @property
    def image_size(self) -> int:
        return int(self.group.attrs["image_size"])

    @property
    def splits(self) -> np.ndarray:
        """(N,) split names."""
        return np.array(SPLITS)[self.read("split", 0, self.num_episodes)]

    def episode_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def bounds(self, episode: int) -> tuple[int, int]:
        """Row range [start, end) of an episode in the flat arrays."""
        ends = self.read("episode_ends", max(episode - 1, 0), episode + 1)
        return (int(ends[0]) if episode else 0), int(ends[-1])

    def episode(self, index: int, fields: tuple[str, ...] = FIELDS) -> dict[str, np.ndarray]:
        """Arrays of one episode, each (T, ...)."""
        if not 0 <= index < self.num_episodes:
            raise WmlabError(f"episode {index} does not exist; the dataset has {self.num_episodes}")
        start, end = self.bounds(index)
        return {name: self.read(name, start, end) for name in fields}

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one array (default: every committed row) as numpy. A chunk that does not decode
        raises :class:`WmlabError` naming its file and the episodes it holds."""
        if stop is None:
            stop = self.num_episodes if name in PER_EPISODE else self.committed["rows"]
        try:
            return np.asarray(self._arrays[name][start:stop])
        except Exception as e:  # noqa: BLE001 - codecs raise many types for damaged bytes
            damages = self._scan(name, start, stop) or [Damage(self.path / name, (), _short(e))]
            raise WmlabError(damage_message(self.path, damages)) from None

    def check(self, advance: Callable[[int], Any] | None = None) -> list[Damage]:
        """Decode every chunk of every array; returns the damaged ones (empty: the store is sound). ``advance(n)``
        is called with the chunks read so far, for a progress bar."""
        damages = []
        for name in (*PER_EPISODE, *FIELDS):
            damages += self._scan(name, 0, self._arrays[name].shape[0], advance)
        return damages

    def num_chunks(self) -> int:
        """How many chunks :meth:`check` reads."""
        return sum(-(-array.shape[0] // array.chunks[0]) for array in self._arrays.values())

    def _scan(self, name: str, start: int, stop: int, advance: Callable[[int], Any] | None = None) -> list[Damage]:
        """The chunks of one array overlapping rows [start, stop) that do not decode."""
        array = self._arrays[name]
        size, damages = array.chunks[0], []
        for chunk in range(start // size, -(-stop // size)):
            low, high = chunk * size, min((chunk + 1) * size, array.shape[0])
            try:
                array[low:high]
            except Exception as e:  # noqa: BLE001
                key = array.metadata.encode_chunk_key((chunk,) + (0,) * (array.ndim - 1))
                damages.append(Damage(self.path / name / key, self._episodes_in(name, low, high), _short(e)))
            if advance is not None:
                advance(1)
        return damages

    def _episodes_in(self, name: str, low: int, high: int) -> tuple[tuple[int, str], ...]:
        """The committed episodes, (index, split), that own rows [low, high) of array ``name``."""
        count = self.num_episodes
        if name in PER_EPISODE:
            indices = range(low, min(high, count))
        else:
            try:
                ends = np.asarray(self._arrays["episode_ends"][:count])
            except Exception:  # noqa: BLE001 - the boundaries are damaged too, and reported on their own
                return ()
            first, last = np.searchsorted(ends, [low, high - 1], side="right")
            indices = range(int(first), min(int(last) + 1, count))
        try:
            labels = np.array(SPLITS)[np.asarray(self._arrays["split"][:count])]
        except Exception:  # noqa: BLE001
            labels = np.array(["split unknown"] * count)
        return tuple((i, str(labels[i])) for i in indices)
