"""What `wmlab data info` reports about an episode store."""

from __future__ import annotations

from typing import Any

import numpy as np

from wmlab.data.trajectories import SPLITS, EpisodeStore

ORIGINAL_PADDED_LENGTH = 246  # the DINO-WM arrays are zero-padded to 246 steps


def block_moved(states: np.ndarray, min_shift: float = 20.0, min_turn: float = 0.2) -> bool:
    """Net block displacement >= 20 px or net rotation >= 0.2 rad over an episode's states (T, 5)."""
    shift = np.linalg.norm(states[-1, 2:4] - states[0, 2:4])
    turn = abs((states[-1, 4] - states[0, 4] + np.pi) % (2 * np.pi) - np.pi)
    return bool(shift >= min_shift or turn >= min_turn)


def summarize(store: EpisodeStore) -> dict[str, Any]:
    """Episodes per split, lengths, image size, valid-step action statistics (and their padded equivalent as the
    fork computed them), |rel| percentiles, block-moved fraction, and the collector's contact fraction if recorded."""
    lengths = store.lengths
    # read() turns an undecodable chunk into a WmlabError naming its file and episodes
    rel = store.read("rel_actions").astype(np.float64)
    states = store.read("states").astype(np.float64)
    ends = store.episode_ends
    starts = np.concatenate([[0], ends[:-1]])
    moved = [block_moved(states[s:e]) for s, e in zip(starts, ends)]
    std = rel.std(0)
    magnitude = np.linalg.norm(rel, axis=1)
    return {
        "episodes": {split: int((store.splits == split).sum()) for split in SPLITS},
        "length": {"min": int(lengths.min()), "max": int(lengths.max()), "mean": float(lengths.mean())},
        "image_size": store.image_size,
        "action_mean_px": rel.mean(0).tolist(),
        "action_std_px": std.tolist(),
        "action_std_padded_equivalent_px": (std * np.sqrt(lengths.mean() / ORIGINAL_PADDED_LENGTH)).tolist(),
        "abs_rel_px": {
            "p50": float(np.percentile(magnitude, 50)),
            "p99": float(np.percentile(magnitude, 99)),
            "max": float(magnitude.max()),
        },
        "block_moved_fraction": float(np.mean(moved)),
        "contact_fraction": store.attrs.get("contact_fraction"),
        "origin": store.attrs.get("origin"),
        "statistics": store.attrs.get("statistics"),
    }
