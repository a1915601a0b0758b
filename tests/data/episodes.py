"""Random episodes and small complete stores for the data tests (not PushT physics: shapes and bytes only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wmlab.data.trajectories import EpisodeStore


def random_episode(rng: np.random.Generator, length: int, size: int = 16) -> dict[str, np.ndarray]:
    """One episode of ``length`` steps: images (T, size, size, 3) uint8 and the vector fields (T, D)."""
    return {
        "images": rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8),
        "states": rng.normal(size=(length, 5)),
        "velocities": rng.normal(size=(length, 2)),
        "rel_actions": rng.normal(0, 20, (length, 2)),
        "abs_actions": rng.uniform(0, 512, (length, 2)),
    }


def random_store(path: Path, lengths: Sequence[int], image_size: int = 16, val: int = 0) -> EpisodeStore:
    """A complete store of random episodes of ``lengths`` (seed 0); episode ``val`` is the validation split."""
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path, image_size, {})
    for i, n in enumerate(lengths):
        store.append_episode(random_episode(rng, n, image_size), "val" if i == val else "train")
    store.finalize()
    return EpisodeStore.open(path)
