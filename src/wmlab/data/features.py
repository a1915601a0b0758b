"""Frozen-encoder feature cache and the training windows read from it (docs/adding_an_encoder.md, "Fill a cache").

A cache lives in ``<dataset>/features/<name>/``::

    tokens.npy     (sum T, P, E) float16, aligned with the store's flat frame index, memory-mapped for reading
    progress.json  {"frames": n}: rows [0, n) of tokens.npy are encoded and flushed (the resume point)
    meta.json      encoder description, dataset fingerprint, token shape; ``complete: true`` once all frames are in

Commit protocol (a kill at any moment leaves a cache that the same command resumes to the same bytes):

1. No ``meta.json``: start over. Leftover temporaries are removed, ``tokens.npy`` is created at full size (zeros,
   sparse) and fsynced, then ``progress.json`` = 0 and ``meta.json`` (``complete: false``) are written atomically,
   in this order. Once ``meta.json`` exists, the other two files exist and are whole, and a ``progress.json`` left
   by an earlier cache in the same folder has been reset: it can never vouch for the new, zeroed ``tokens.npy``.
2. Each batch is written into the memory map and flushed (msync) *before* ``progress.json`` is atomically advanced,
   so progress never claims rows that are not on disk. A resume checks all three files, removes the temporaries a
   kill inside an atomic write left, and continues at the frame ``progress.json`` names.
3. After the last batch ``meta.json`` is rewritten atomically with ``complete: true``: the only moment the cache
   becomes readable. :meth:`FeatureCache.open` refuses anything else.

Every file is checked before it is used or written (JSON shape, .npy header, dtype, shape, byte size). A damaged
file is refused with a :class:`WmlabError` naming it, and nothing is changed: a kill cannot produce one, so it was
damaged from outside and the cache is rebuilt by deleting its folder and encoding again. A missing
``progress.json`` in an incomplete cache means frame 0 (caches written before this protocol could lack it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmlab.atomic import atomic_write_text, fsync_path, remove_stale_temporaries
from wmlab.data.trajectories import EpisodeStore
from wmlab.encoders.pooling import pool_tokens
from wmlab.errors import WmlabError
from wmlab.locks import exclusive_writer
from wmlab.progress import progress_bar, say

META, PROGRESS, TOKENS = "meta.json", "progress.json", "tokens.npy"
#: the keys of meta.json and their JSON types
META_KEYS = {"encoder": dict, "fingerprint": dict, "token_shape": list, "complete": bool}
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def dataset_fingerprint(store: EpisodeStore, samples: int = 16) -> dict[str, Any]:
    """Episode lengths plus a checksum of evenly spaced frames: what a cache must match."""
    total = int(store.episode_ends[-1])
    rows = np.unique(np.linspace(0, total - 1, samples).astype(int))
    digest = hashlib.sha256()
    for row in rows:
        digest.update(store.read("images", int(row), int(row) + 1)[0].tobytes())
    return {
        "lengths_sha256": hashlib.sha256(store.lengths.astype(np.int64).tobytes()).hexdigest(),
        "frames_sha256": digest.hexdigest(),
        "frames": total,
        "episodes": store.num_episodes,
    }


def _damaged(path: Path, why: str) -> WmlabError:
    folder = path.parent
    return WmlabError(
        f"the feature cache file {path} is damaged ({why}); delete the folder {folder} and run "
        f"`wmlab encode {folder.parent.parent}` with the same options again"
    )


def _is_count(value: Any, least: int) -> bool:
    return type(value) is int and value >= least  # not bool, which JSON `true` becomes


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise _damaged(path, "missing") from None
    except (OSError, ValueError) as e:  # ValueError covers JSONDecodeError and UnicodeDecodeError
        raise _damaged(path, f"not valid JSON: {e}") from None


def _read_meta(path: Path) -> dict[str, Any]:
    meta = _read_json(path)
    if not isinstance(meta, dict):
        raise _damaged(path, f"a JSON {type(meta).__name__} instead of an object")
    problems = [
        f"{key!r} is missing" if key not in meta else f"{key!r} is not a {kind.__name__}"
        for key, kind in META_KEYS.items()
        if not isinstance(meta.get(key), kind)
    ]
    if not problems:
        shape, frames = meta["token_shape"], meta["fingerprint"].get("frames")
        if len(shape) != 2 or not all(_is_count(n, 1) for n in shape):
            problems.append(f"token_shape {shape} is not [P, E]")
        if not _is_count(frames, 0):
            problems.append(f"fingerprint.frames {frames!r} is not a frame count")
    if problems:
        raise _damaged(path, "; ".join(problems))
    return meta


def _read_progress(path: Path, total: int) -> int:
    """Frames already encoded according to progress.json (0 when absent: caches from before it was written first)."""
    if not path.exists():
        return 0
    progress = _read_json(path)
    frames = progress.get("frames") if isinstance(progress, dict) else None
    if not _is_count(frames, 0) or frames > total:
        raise _damaged(path, f'expected {{"frames": n}} with 0 <= n <= {total}, found {json.dumps(progress)[:80]}')
    return frames


def _check_tokens(path: Path, shape: tuple[int, ...]) -> None:
    """Raise unless ``path`` is a whole C-order float16 .npy array of ``shape``. Reads the header only."""
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADERS:
                raise ValueError(f"unsupported .npy format version {version}")
            found, fortran_order, dtype = _NPY_HEADERS[version](f)
            offset = f.tell()
        size = path.stat().st_size
    except FileNotFoundError:
        raise _damaged(path, "missing") from None
    except (OSError, ValueError) as e:  # numpy reports a cut or garbled header as ValueError
        raise _damaged(path, f"not a readable .npy array: {e}") from None
    if found != shape or dtype != np.float16 or fortran_order:
        raise _damaged(path, f"holds {dtype} {found}, expected float16 {shape}")
    expected = offset + int(np.prod(shape)) * np.dtype(np.float16).itemsize
    if size != expected:  # np.load would fail (short) or silently map a file that is not ours (long)
        raise _damaged(path, f"{size} bytes where the array needs {expected}: the file was cut or extended")


class FeatureCache:
    """The cached tokens of one encoder configuration for one dataset: the folder ``<dataset>/features/<name>``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def meta(self) -> dict[str, Any]:
        """The checked contents of meta.json (the cache may be incomplete; :meth:`open` refuses that)."""
        path = self.folder / META
        if not path.exists():
            if self.folder.is_dir():  # an encode was stopped before it wrote meta.json
                raise self._incomplete()
            raise WmlabError(f"no feature cache at {self.folder}; create it with `wmlab encode DATASET --encoder ...`")
        return _read_meta(path)

    def _incomplete(self) -> WmlabError:
        return WmlabError(
            f"the feature cache {self.folder} is incomplete; re-run the same `wmlab encode` command to finish it"
        )

    def open(self, store: EpisodeStore) -> np.ndarray:
        """Memory-mapped tokens (sum T, P, E) fp16 of a complete cache that matches ``store``."""
        meta = self.meta
        if not meta["complete"]:
            raise self._incomplete()
        if meta["fingerprint"] != dataset_fingerprint(store):
            raise WmlabError(
                f"the feature cache {self.folder} was computed for another version of the dataset "
                f"{store.path}; delete the cache and encode again"
            )
        path = self.folder / TOKENS
        _check_tokens(path, (meta["fingerprint"]["frames"], *meta["token_shape"]))
        return np.lib.format.open_memmap(path, mode="r")


def _create(folder: Path, meta: dict[str, Any], shape: tuple[int, ...]) -> np.memmap:
    """Start a cache over (protocol step 1); returns the zeroed tokens (sum T, P, E) opened for writing."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    tokens = np.lib.format.open_memmap(folder / TOKENS, mode="w+", dtype=np.float16, shape=shape)
    fsync_path(folder / TOKENS)  # its header went through plain writes: on disk before meta.json vouches for the file
    atomic_write_text(folder / PROGRESS, json.dumps({"frames": 0}))  # a leftover count must not survive into meta
    atomic_write_text(folder / META, json.dumps(meta))
    return tokens


def _reopen(cache: FeatureCache, meta: dict[str, Any], shape: tuple[int, ...]) -> tuple[np.memmap | None, int]:
    """Check every file of an existing cache, then (tokens opened for writing, frames done), or (None, total) when
    it is complete. Nothing is changed before all checks pass: a refused cache stays exactly as it was found."""
    found = cache.meta
    if any(found[key] != meta[key] for key in ("fingerprint", "encoder", "token_shape")):
        raise WmlabError(
            f"{cache.folder} holds features of another dataset or encoder configuration; delete it or "
            "encode under another name"
        )
    _check_tokens(cache.folder / TOKENS, shape)
    if found["complete"]:
        return None, shape[0]
    done = _read_progress(cache.folder / PROGRESS, shape[0])
    remove_stale_temporaries(cache.folder)  # what a kill inside an atomic write left behind
    return np.lib.format.open_memmap(cache.folder / TOKENS, mode="r+"), done


def encode_dataset(
    store: EpisodeStore, encoder: Any, name: str, batch_size: int = 32, show_progress: bool = True
) -> FeatureCache:
    """Encode every frame of ``store`` once into ``<dataset>/features/<name>/``; resumes an interrupted run.

    ``encoder`` is a :class:`wmlab.encoders.Encoder`: ``encode(images uint8 (B, H, W, 3)) -> tokens (B, P, E)``,
    ``token_shape`` (P, E) and ``metadata() -> dict`` (id, implementation, weights, input size, normalisation, dtype).
    A run killed at any moment resumes, when called again, to the same bytes as an uninterrupted one; a damaged
    cache file raises :class:`WmlabError` and is left untouched. Another process encoding the same cache at the same
    time is refused (:mod:`wmlab.locks`).
    """
    with exclusive_writer(store.path, "feature cache", part=f"features-{name}"):
        return _encode_dataset(store, encoder, name, batch_size, show_progress)


def _encode_dataset(store: EpisodeStore, encoder: Any, name: str, batch_size: int, show_progress: bool) -> FeatureCache:
    folder = store.path / "features" / name
    cache = FeatureCache(folder)
    fingerprint = dataset_fingerprint(store)
    shape = (fingerprint["frames"], *encoder.token_shape)
    meta = {
        # compared with meta.json as JSON stores it: a tuple in the metadata comes back as a list
        "encoder": json.loads(json.dumps(dict(encoder.metadata()))),
        "fingerprint": fingerprint,
        "token_shape": list(shape[1:]),
        "complete": False,
    }
    resuming = (folder / META).exists()
    if resuming:
        tokens, done = _reopen(cache, meta, shape)
        if tokens is None:
            return cache
    else:
        tokens, done = _create(folder, meta, shape), 0
    total = shape[0]
    say(
        f"encode {name}: {total} frames of {store.path} into {folder}: "
        + (f"resuming at frame {done}" if resuming else "fresh cache"),
        show_progress,
    )
    # image encoders read frames; the `state` encoder reads the 5-d states of the same rows
    source = "states" if getattr(encoder, "input_kind", "image") == "state" else "images"
    with progress_bar(f"encode {name}", total, "frames", show_progress) as advance:
        advance(done)
        for start in range(done, total, batch_size):
            stop = min(total, start + batch_size)
            batch = encoder.encode(store.read(source, start, stop))
            tokens[start:stop] = np.asarray(batch.float().cpu().numpy() if hasattr(batch, "cpu") else batch, np.float16)
            tokens.flush()  # msync: the rows are on disk before progress.json counts them
            atomic_write_text(folder / PROGRESS, json.dumps({"frames": stop}))
            advance(stop - start)
    atomic_write_text(folder / META, json.dumps({**meta, "complete": True}))  # last: the cache is now usable
    return cache


#: short names accepted by `wmlab encode --encoder` and the cache names they produce (``dinov2-224``)
ENCODER_ALIASES = {"dinov2": "dinov2-s14", "dinov2-s14": "dinov2-s14", "random-vit": "random-vit", "state": "state"}


def encode_store(
    path: str | Path,
    encoder: str = "dinov2",
    size: int = 224,
    weights: str = "auto",
    dtype: str = "fp32",
    batch_size: int = 32,
    show_progress: bool = True,
    device: str = "auto",
) -> FeatureCache:
    """Encode a dataset with a named encoder into ``<dataset>/features/<encoder>-<size>`` (``state`` for states).

    ``device``: auto (CUDA when available), cpu or cuda. The features do not depend on it beyond float rounding."""
    import torch

    from wmlab.encoders import make_encoder

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if encoder not in ENCODER_ALIASES:
        raise WmlabError(f"unknown encoder {encoder!r}; valid: {', '.join(ENCODER_ALIASES)}")
    store = EpisodeStore.open(path)
    stats = store.attrs["statistics"]
    model = make_encoder(
        ENCODER_ALIASES[encoder],
        size,
        weights=weights,
        dtype=dtype,
        mean=stats["state_mean"],
        std=stats["state_std"],
        device=device,
    )
    name = "state" if encoder == "state" else f"{encoder}-{size}"
    return encode_dataset(store, model, name, batch_size, show_progress)


class FeatureWindows:
    """Training windows over a feature cache: frames s + k fs for k = 0..h, macro actions (h+1, fs * 2).

    Args:
        store: the dataset; cache: its feature cache (or None for the ``state`` encoder, which reads states).
        split: ``train`` or ``val``; history: h; frameskip: fs; pool: optional patch pooling factor.
        stats: action statistics {"action_mean", "action_std"} (default: the dataset's valid-step statistics).
    """

    def __init__(
        self,
        store: EpisodeStore,
        cache: FeatureCache | None,
        split: str = "train",
        history: int = 1,
        frameskip: int = 5,
        pool: int | None = None,
        stats: Mapping[str, Any] | None = None,
    ):
        self.store, self.history, self.frameskip, self.pool = store, history, frameskip, pool
        self.tokens = cache.open(store) if cache is not None else None
        stats = stats or store.attrs["statistics"]
        self.action_mean = np.asarray(stats["action_mean"], np.float32)
        self.action_std = np.asarray(stats["action_std"], np.float32)
        self.rel_actions = np.asarray(store.read("rel_actions"), np.float32)  # a damaged chunk: one clear error
        self.states = np.asarray(store.read("states"), np.float32)
        span = (history + 1) * frameskip
        starts = []
        for episode in store.episode_indices(split):
            begin, end = store.bounds(int(episode))
            starts.extend(range(begin, end - span + 1))  # s in [0, T - num_frames * fs]
        self.starts = np.asarray(starts, np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """tokens (h+1, P, E) float32, actions (h+1, fs * 2) normalised, states (h+1, 5)."""
        start = int(self.starts[index])
        frames = start + self.frameskip * np.arange(self.history + 1)
        span = (self.history + 1) * self.frameskip
        actions = (self.rel_actions[start : start + span] / 100.0 - self.action_mean) / self.action_std
        item = {"actions": actions.reshape(self.history + 1, self.frameskip * 2), "states": self.states[frames]}
        if self.tokens is not None:
            tokens = np.asarray(self.tokens[frames], np.float32)
            item["tokens"] = pool_tokens(torch.from_numpy(tokens), self.pool).numpy() if self.pool else tokens
        return item
