"""Shared figure helpers of the analyses: atomic PNGs, per-dimension trajectory panels, side-by-side frames."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from wmlab.atomic import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_dimensions(
    path: str | Path,
    series: Mapping[str, np.ndarray],
    labels: Sequence[str],
    dims: Sequence[int] | None = None,
    title: str = "",
    styles: Mapping[str, dict] | None = None,
) -> Path:
    """One panel per selected dimension, one line per series; each series is (H, D) over imagined steps 1..H."""
    plt = pyplot()
    dims = list(range(len(labels))) if dims is None else list(dims)
    cols = min(4, len(dims))
    rows = -(-len(dims) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.5 * rows), squeeze=False)
    for ax, d in zip(axes.flat, dims):
        for name, values in series.items():
            values = np.asarray(values)
            steps = np.arange(1, len(values) + 1)
            ax.plot(steps, values[:, d], label=name, lw=1.2, **(styles or {}).get(name, {}))
        ax.set_title(labels[d], fontsize=9)
        ax.set_xlabel("imagined step", fontsize=8)
    for ax in list(axes.flat)[len(dims) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.88, 0.95))
    return save_figure(fig, path)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] (float) or uint8 -> uint8, same shape."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return (np.clip(images, 0.0, 1.0) * 255).round().astype(np.uint8)


def side_by_side(columns: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Frames placed left to right: each column (T, S, S, 3) in [0, 1] or uint8 -> (T, S, k S + (k - 1) gap, 3).

    Columns shorter than the longest repeat their last frame; a white gap separates them.
    """
    frames = [to_uint8(c) for c in columns]
    length = max(len(f) for f in frames)
    frames = [np.concatenate([f, np.repeat(f[-1:], length - len(f), 0)]) if len(f) < length else f for f in frames]
    height = frames[0].shape[1]
    spacer = np.full((length, height, gap, 3), 255, np.uint8)
    parts = []
    for i, f in enumerate(frames):
        parts += ([spacer] if i else []) + [f]
    return np.concatenate(parts, 2)
