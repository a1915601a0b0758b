"""Online replay buffer of the DreamerV3 agent (spec dali.md §3.6).

Design:

* Every environment worker has its own stream of steps. Step ``i`` of worker ``w`` (``i`` counts every step ever
  added to that worker) lives in a preallocated ring buffer at ``data[key][w, i % C]`` with
  ``C = capacity // num_workers``, so the oldest steps of a worker are overwritten first (FIFO). The buffers are
  allocated on the first add, once keys, shapes and dtypes are known: memory is ``capacity x step size``.
* A window is ``T = length`` consecutive steps of one worker's stream (stride 1); worker ``w`` holds
  ``max(0, stored_w - T + 1)`` of them. Sampling draws global window indices uniformly, maps them to
  (worker, start) with ``searchsorted`` and gathers the ``(B, T)`` ring positions with fancy indexing. Windows may
  cross episode boundaries; ``is_first`` marks where a new episode starts.
* On disk (optional), every ``chunk_size`` steps of a worker become one uncompressed, atomically written file
  ``w{worker:02d}-{first_step:012d}.npz``. ``save()`` also writes each worker's unfinished chunk under the name the
  full chunk will take later, so the full chunk replaces it. Files whose steps have all left memory are deleted,
  except those the last ``save()`` still needs, so the last checkpoint can always be resumed: disk use per worker
  is at most ``C + chunk_size`` steps plus the steps added since the last ``save()``.
* ``Replay.load`` puts every step back at the same ring position, so a buffer restored to a checkpoint's
  ``steps_per_worker`` draws the same samples from the same generator state as the buffer that was saved.
"""

from __future__ import annotations

import re
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from wmlab.atomic import atomic_write
from wmlab.errors import WmlabError

_CHUNK_NAME = re.compile(r"^w(\d+)-(\d+)\.npz$")
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _chunk_name(worker: int, first: int) -> str:
    return f"w{worker:02d}-{first:012d}.npz"


def _read_chunk(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of one chunk file, each (n, ...), or None if the file is damaged."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except _READ_ERRORS:  # the caller decides what a damaged file costs
        return None
    lengths = {len(a) if a.ndim else 0 for a in arrays.values()}
    return arrays if len(lengths) == 1 and 0 not in lengths else None


def _opens(path: Path) -> bool:
    """Whether the zip directory of ``path`` is readable (a torn file fails here) without reading the data."""
    try:
        with zipfile.ZipFile(path):
            return True
    except _READ_ERRORS:
        return False


def _chunk_files(directory: str | Path) -> dict[int, dict[int, Path]]:
    """The chunk files in ``directory``: worker -> first step -> path."""
    files: dict[int, dict[int, Path]] = {}
    for path in Path(directory).glob("w*.npz"):
        if (match := _CHUNK_NAME.match(path.name)) is not None:
            files.setdefault(int(match[1]), {})[int(match[2])] = path
    return files


def stream_first_steps(directory: str | Path) -> list[int]:
    """For every worker of :func:`read_streams`, in the same order: the index of its oldest step still on disk (0
    unless the FIFO capacity has dropped older steps)."""
    return [min(firsts) for _, firsts in sorted(_chunk_files(directory).items())]


def read_streams(directory: str | Path) -> list[dict[str, np.ndarray]]:
    """Every worker's steps on disk, oldest first: one dict of arrays (n_w, ...) per worker, in worker order.

    Read-only (nothing is deleted or rewritten), for analysing a run's data; resuming uses :meth:`Replay.load`.
    Raises :class:`WmlabError` for a damaged chunk or a gap between a worker's chunks.
    """
    files = _chunk_files(directory)
    streams = []
    for worker in sorted(files):
        parts: dict[str, list[np.ndarray]] = {}
        expected = None
        for first in sorted(files[worker]):
            path = files[worker][first]
            chunk = _read_chunk(path)
            if chunk is None:
                raise WmlabError(f"replay file {path} is damaged; move it away to read the others")
            if expected is not None and first != expected:
                raise WmlabError(f"replay of worker {worker} in {directory} has a gap: steps {expected}..{first - 1}")
            for key, value in chunk.items():
                parts.setdefault(key, []).append(value)
            expected = first + len(next(iter(chunk.values())))
        streams.append({key: np.concatenate(values) for key, values in parts.items()})
    return streams


class Replay:
    """FIFO replay of per-worker step streams, sampled as uniform length-T windows.

    A step is a dict of arrays without batch dim (e.g. ``image`` uint8 (64, 64, 3), ``action`` float32 (A,),
    ``reward`` float32 (), ``is_first`` bool ()); the first step added fixes keys, shapes and dtypes.

    Args:
        capacity: total steps kept in memory over all workers; each worker keeps ``capacity // num_workers``.
        length: T, the number of consecutive steps of one sampled window.
        num_workers: W, the number of environment workers (one stream each).
        directory: folder for the chunk files, or None for an in-memory replay. Must not hold chunks already:
            use :meth:`load` to continue from one.
        chunk_size: steps of one worker per chunk file; at most ``capacity // num_workers``.
    """

    def __init__(
        self,
        capacity: int,
        length: int,
        num_workers: int,
        directory: str | Path | None = None,
        chunk_size: int = 1024,
    ) -> None:
        if num_workers < 1 or capacity < num_workers:
            raise WmlabError(f"replay capacity {capacity} must be at least num_workers={num_workers} (>= 1)")
        self.capacity, self.length, self.num_workers, self.chunk_size = capacity, length, num_workers, chunk_size
        self.worker_capacity = capacity // num_workers
        if not 1 <= length <= self.worker_capacity:
            raise WmlabError(
                f"replay length {length} must be in [1, capacity // num_workers = {self.worker_capacity}]; "
                "raise the capacity or shorten the sequences"
            )
        self.directory: Path | None = None
        self._spec: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._data: dict[str, np.ndarray] = {}  # key -> (W, C, ...)
        self._total = np.zeros(num_workers, np.int64)  # steps ever added, per worker
        self._files: list[dict[int, int]] = [{} for _ in range(num_workers)]  # per worker: first step -> count
        self._protected: list[int | None] = [None] * num_workers  # oldest step the last save()/load needs
        if directory is not None:
            self._attach(Path(directory))
            if any(_CHUNK_NAME.match(p.name) for p in self.directory.glob("w*.npz")):
                raise WmlabError(
                    f"replay folder {self.directory} already holds chunk files; resume with Replay.load or "
                    "delete the folder to start the replay empty"
                )

    def _attach(self, directory: Path) -> None:
        if not 1 <= self.chunk_size <= self.worker_capacity:
            raise WmlabError(
                f"replay chunk_size {self.chunk_size} must be in [1, capacity // num_workers = "
                f"{self.worker_capacity}] so that a chunk is written before its steps are evicted"
            )
        self.directory = directory

    def _stored(self) -> np.ndarray:
        """(W,) steps held in memory per worker."""
        return np.minimum(self._total, self.worker_capacity)

    def __len__(self) -> int:
        return int(self._stored().sum())

    @property
    def num_windows(self) -> int:
        """Number of valid length-T windows over all workers."""
        return int(np.maximum(self._stored() - self.length + 1, 0).sum())

    @property
    def steps_per_worker(self) -> list[int]:
        """Steps ever added per worker, evicted ones included (store this in checkpoints)."""
        return [int(n) for n in self._total]

    def add(self, step: dict[str, np.ndarray], worker: int) -> None:
        """Append one step (arrays without batch dim) to the stream of ``worker``."""
        if not 0 <= worker < self.num_workers:
            raise WmlabError(f"replay worker {worker} out of range [0, {self.num_workers})")
        values = self._check(step, ())
        position = self._total[worker] % self.worker_capacity
        for key, value in values.items():
            self._data[key][worker, position] = value
        self._total[worker] += 1
        self._after_add(worker)

    def add_batch(self, steps: dict[str, np.ndarray]) -> None:
        """Append one step to every worker's stream; each array is (W, ...), row ``w`` for worker ``w``."""
        values = self._check(steps, (self.num_workers,))
        positions = self._total % self.worker_capacity
        for key, value in values.items():
            self._data[key][np.arange(self.num_workers), positions] = value
        self._total += 1
        for worker in range(self.num_workers):
            self._after_add(worker)

    def _check(self, step: dict[str, np.ndarray], lead: tuple[int, ...]) -> dict[str, np.ndarray]:
        values = {key: np.asarray(value) for key, value in step.items()}
        if self._spec is None:
            for key, value in values.items():
                if value.shape[: len(lead)] != lead:
                    raise WmlabError(f"add_batch: {key!r} has shape {value.shape}, expected leading dim {lead[0]}")
            self._allocate({key: (value.shape[len(lead) :], value.dtype) for key, value in values.items()})
        if values.keys() != self._spec.keys():
            missing, extra = sorted(self._spec.keys() - values.keys()), sorted(values.keys() - self._spec.keys())
            raise WmlabError(
                f"replay step keys differ from the first step: missing {missing}, unexpected {extra}; "
                "every step must have exactly the keys of the first one"
            )
        for key, value in values.items():
            shape, dtype = self._spec[key]
            if value.shape != lead + shape:
                raise WmlabError(
                    f"replay step {key!r} has shape {value.shape}, expected {lead + shape} "
                    "(fixed by the first step added)"
                )
            if not np.can_cast(value.dtype, dtype, "same_kind"):
                raise WmlabError(
                    f"replay step {key!r} has dtype {value.dtype}, expected {dtype} (fixed by the first step added)"
                )
        return values

    def _allocate(self, spec: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self._spec = {key: (tuple(shape), np.dtype(dtype)) for key, (shape, dtype) in spec.items()}
        shape = (self.num_workers, self.worker_capacity)
        self._data = {key: np.zeros(shape + s, d) for key, (s, d) in self._spec.items()}

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw ``batch`` windows uniformly (with replacement) among all valid windows of all workers.

        Returns a dict of arrays of shape (B, T, ...), B = ``batch``, T = ``length``.
        """
        counts = np.maximum(self._stored() - self.length + 1, 0)  # (W,) windows per worker
        if counts.sum() == 0:
            raise WmlabError(
                f"replay holds no full window yet: a window needs {self.length} consecutive steps of one worker, "
                f"the fullest worker has {int(self._stored().max())}; add more steps (prefill) before sampling"
            )
        ends = np.cumsum(counts)
        index = rng.integers(0, ends[-1], size=batch)  # (B,) global window indices
        worker = np.searchsorted(ends, index, side="right")
        oldest = self._total - self._stored()
        start = oldest[worker] + index - (ends[worker] - counts[worker])  # (B,) stream index of the first step
        positions = (start[:, None] + np.arange(self.length)) % self.worker_capacity  # (B, T)
        return {key: data[worker[:, None], positions] for key, data in self._data.items()}

    def _after_add(self, worker: int) -> None:
        total = int(self._total[worker])
        if self.directory is not None and total % self.chunk_size == 0:
            self._write(worker, total - self.chunk_size, total)
            self._prune(worker)

    def _write(self, worker: int, first: int, stop: int) -> None:
        """Write steps [first, stop) of ``worker`` (all in memory) as the chunk file named after ``first``."""
        positions = np.arange(first, stop) % self.worker_capacity
        arrays = {key: data[worker, positions] for key, data in self._data.items()}
        atomic_write(self.directory / _chunk_name(worker, first), lambda f: np.savez(f, **arrays))
        self._files[worker][first] = stop - first

    def _prune(self, worker: int) -> None:
        """Delete the chunk files of ``worker`` that neither memory nor the last checkpoint needs."""
        keep_from = int(self._total[worker] - self._stored()[worker])
        if self._protected[worker] is not None:
            keep_from = min(keep_from, self._protected[worker])
        for first, count in list(self._files[worker].items()):
            if first + count <= keep_from:
                (self.directory / _chunk_name(worker, first)).unlink(missing_ok=True)
                del self._files[worker][first]

    def save(self) -> None:
        """Write each worker's unfinished chunk, so the folder holds every stored step; call it at checkpoints
        (with :attr:`steps_per_worker`). Does nothing for an in-memory replay."""
        if self.directory is None or self._spec is None:
            return
        for worker in range(self.num_workers):
            total = int(self._total[worker])
            if total % self.chunk_size:
                self._write(worker, total - total % self.chunk_size, total)
            self._protected[worker] = total - int(self._stored()[worker])
            self._prune(worker)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        capacity: int,
        length: int,
        num_workers: int,
        chunk_size: int = 1024,
        steps_per_worker: list[int] | None = None,
    ) -> Replay:
        """Rebuild a replay from its chunk files (an empty or missing folder gives an empty replay).

        With ``steps_per_worker`` (saved in the checkpoint), the steps added after the checkpoint are dropped
        and their files deleted, so the resumed run continues from exactly the checkpoint's buffer.
        """
        replay = cls(capacity, length, num_workers, None, chunk_size)
        replay._attach(Path(directory))
        if steps_per_worker is not None and len(steps_per_worker) != num_workers:
            raise WmlabError(f"steps_per_worker has {len(steps_per_worker)} entries, expected {num_workers}")
        files: list[dict[int, Path]] = [{} for _ in range(num_workers)]
        for path in sorted(replay.directory.glob("w*.npz")):
            match = _CHUNK_NAME.match(path.name)
            if match is None:
                continue
            worker, first = int(match[1]), int(match[2])
            if worker >= num_workers:
                raise WmlabError(
                    f"replay file {path} belongs to worker {worker} but num_workers={num_workers}; resume with the "
                    f"original num_workers or delete {replay.directory} to start the replay empty"
                )
            files[worker][first] = path
        for worker in range(num_workers):
            total = None if steps_per_worker is None else int(steps_per_worker[worker])
            replay._load_worker(worker, files[worker], total)
        return replay

    def _damaged(self, path: Path) -> WmlabError:
        return WmlabError(
            f"replay file {path} is damaged and holds steps the checkpoint needs; delete the folder "
            f"{self.directory} to resume with an empty replay"
        )

    def _load_worker(self, worker: int, files: dict[int, Path], total: int | None) -> None:
        firsts = sorted(files)
        if total is None:  # no checkpoint: the stream ends where the newest file ends
            if not firsts:
                return
            newest = _read_chunk(files[firsts[-1]])
            if newest is None:
                raise self._damaged(files[firsts[-1]])
            total = firsts[-1] + len(next(iter(newest.values())))
        low = max(0, total - self.worker_capacity)  # the checkpoint's memory holds steps [low, total)
        covered = np.zeros(total - low, bool)
        rewrite = None
        for i, first in enumerate(firsts):
            path = files[first]
            if first >= total:  # written after the checkpoint: stale
                if not _opens(path):
                    warnings.warn(
                        f"skipping damaged replay file {path}: it only holds steps after the checkpoint", stacklevel=2
                    )
                path.unlink(missing_ok=True)
                continue
            if i + 1 < len(firsts) and firsts[i + 1] <= low:  # the next file starts before the needed steps
                self._files[worker][first] = firsts[i + 1] - first
                continue
            arrays = _read_chunk(path)
            if arrays is None:
                raise self._damaged(path)
            if self._spec is None:
                self._allocate({key: (a.shape[1:], a.dtype) for key, a in arrays.items()})
            spec = {key: (a.shape[1:], a.dtype) for key, a in arrays.items()}
            if spec != self._spec:
                raise WmlabError(
                    f"replay file {path} holds keys/shapes/dtypes {spec} unlike the other chunks {self._spec}; "
                    f"delete {self.directory} to start the replay empty"
                )
            count = len(next(iter(arrays.values())))
            self._files[worker][first] = count
            start, stop = max(first, low), min(first + count, total)
            if start < stop:
                positions = np.arange(start, stop) % self.worker_capacity
                for key, a in arrays.items():
                    self._data[key][worker, positions] = a[start - first : stop - first]
                covered[start - low : stop - low] = True
            if first + count > total:  # straddles the checkpoint: rewrite it without the later steps
                rewrite = first
        if not covered.all():
            raise WmlabError(
                f"replay folder {self.directory} lacks step {low + int(np.argmin(covered))} of worker {worker}, "
                "which the checkpoint needs (was Replay.save() called when the checkpoint was written?); "
                "delete the folder to resume with an empty replay"
            )
        self._total[worker] = total
        self._protected[worker] = low
        if rewrite is not None:  # (a chunk_size change can leave the file's start out of memory)
            if rewrite < low:
                files[rewrite].unlink(missing_ok=True)
                del self._files[worker][rewrite]
            self._write(worker, max(rewrite, low), total)
