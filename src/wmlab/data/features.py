"""Frozen-encoder feature cache and the training windows read from it (spec/latent_actions.md §4.7, §5.6).

A cache lives in ``<dataset>/features/<name>/``::

    tokens.npy     (sum T, P, E) float16, aligned with the store's flat frame index, memory-mapped for reading
    progress.json  frames encoded so far (rewritten atomically after every batch: resume point)
    meta.json      encoder description, dataset fingerprint, and ``complete: true`` once every frame is encoded

Every frame is encoded once; training reads tokens by index and never re-encodes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmlab.atomic import atomic_write_text
from wmlab.data.trajectories import EpisodeStore
from wmlab.encoders.pooling import pool_tokens
from wmlab.errors import WmlabError
from wmlab.runs import progress_bar


def dataset_fingerprint(store: EpisodeStore, samples: int = 16) -> dict[str, Any]:
    """Episode lengths plus a checksum of evenly spaced frames: what a cache must match."""
    total = int(store.episode_ends[-1])
    rows = np.unique(np.linspace(0, total - 1, samples).astype(int))
    digest = hashlib.sha256()
    for row in rows:
        digest.update(np.asarray(store.group["images"][int(row)]).tobytes())
    return {
        "lengths_sha256": hashlib.sha256(store.lengths.astype(np.int64).tobytes()).hexdigest(),
        "frames_sha256": digest.hexdigest(),
        "frames": total,
        "episodes": store.num_episodes,
    }


class FeatureCache:
    """The cached tokens of one encoder configuration for one dataset."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def meta(self) -> dict[str, Any]:
        path = self.folder / "meta.json"
        if not path.exists():
            raise WmlabError(f"no feature cache at {self.folder}; create it with `wmlab encode DATASET --encoder ...`")
        return json.loads(path.read_text())

    def open(self, store: EpisodeStore) -> np.ndarray:
        """Memory-mapped tokens (sum T, P, E) fp16 of a complete cache that matches ``store``."""
        meta = self.meta
        if not meta.get("complete"):
            raise WmlabError(
                f"the feature cache {self.folder} is incomplete; re-run the same `wmlab encode` command to finish it"
            )
        if meta["fingerprint"] != dataset_fingerprint(store):
            raise WmlabError(
                f"the feature cache {self.folder} was computed for another version of the dataset "
                f"{store.path}; delete the cache and encode again"
            )
        tokens = np.load(self.folder / "tokens.npy", mmap_mode="r")
        if tokens.shape[0] != meta["fingerprint"]["frames"]:
            raise WmlabError(f"{self.folder / 'tokens.npy'} is damaged (wrong length); delete the cache and re-encode")
        return tokens


def encode_dataset(
    store: EpisodeStore, encoder: Any, name: str, batch_size: int = 32, show_progress: bool = True
) -> FeatureCache:
    """Encode every frame of ``store`` once into ``<dataset>/features/<name>/``; resumes an interrupted run.

    ``encoder`` is a :class:`wmlab.encoders.Encoder`: ``encode(images uint8 (B, H, W, 3)) -> tokens (B, P, E)``,
    ``token_shape`` (P, E) and ``metadata() -> dict`` (id, implementation, weights, input size, normalisation, dtype).
    """
    folder = store.path / "features" / name
    cache = FeatureCache(folder)
    fingerprint = dataset_fingerprint(store)
    description = dict(encoder.metadata())
    total = fingerprint["frames"]
    p, e = encoder.token_shape
    meta_path, progress_path, tokens_path = folder / "meta.json", folder / "progress.json", folder / "tokens.npy"
    if meta_path.exists():
        meta = cache.meta
        if meta["fingerprint"] != fingerprint or meta["encoder"] != description:
            raise WmlabError(
                f"{folder} holds features of another dataset or encoder configuration; delete it or "
                "encode under another name"
            )
        if meta.get("complete"):
            return cache
        done = json.loads(progress_path.read_text())["frames"] if progress_path.exists() else 0
        tokens = np.load(tokens_path, mmap_mode="r+")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        tokens = np.lib.format.open_memmap(tokens_path, mode="w+", dtype=np.float16, shape=(total, p, e))
        atomic_write_text(
            meta_path,
            json.dumps({"encoder": description, "fingerprint": fingerprint, "token_shape": [p, e], "complete": False}),
        )
        done = 0
    # image encoders read frames; the `state` encoder reads the 5-d states of the same rows
    source = store.group["states"] if getattr(encoder, "input_kind", "image") == "state" else store.group["images"]
    with progress_bar(f"encode {name}", total, "frames", show_progress) as advance:
        advance(done)
        for start in range(done, total, batch_size):
            stop = min(total, start + batch_size)
            batch = encoder.encode(np.asarray(source[start:stop]))
            tokens[start:stop] = np.asarray(batch.float().cpu().numpy() if hasattr(batch, "cpu") else batch, np.float16)
            tokens.flush()
            atomic_write_text(progress_path, json.dumps({"frames": stop}))
            advance(stop - start)
    meta = cache.meta
    meta["complete"] = True
    atomic_write_text(meta_path, json.dumps(meta))  # written last: the cache is now usable
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
    """Training windows over a feature cache (spec §4.7): frames s + k fs for k = 0..h, macro actions (h+1, fs * 2).

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
        self.rel_actions = np.asarray(store.group["rel_actions"][:], np.float32)
        self.states = np.asarray(store.group["states"][:], np.float32)
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
