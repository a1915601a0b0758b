"""Videos and animated GIFs from uint8 frames, written atomically (imageio; ffmpeg comes with imageio-ffmpeg)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from wmlab.atomic import default_file_mode
from wmlab.errors import WmlabError

VIDEO_SUFFIXES = (".mp4", ".gif")


def write_video(path: str | Path, frames: np.ndarray, fps: float = 30.0) -> Path:
    """Write frames (T, H, W, 3) uint8 as MP4 (H.264) or GIF, chosen by the suffix of ``path``."""
    import imageio.v2 as imageio

    path = Path(path)
    frames = np.asarray(frames)
    if path.suffix not in VIDEO_SUFFIXES:
        raise WmlabError(f"video path {path} must end in one of {', '.join(VIDEO_SUFFIXES)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise WmlabError(f"a video needs uint8 frames (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, list(frames), duration=1000.0 / fps, loop=0)
        else:
            # macro_block_size=1 keeps 64x64 frames as they are instead of resizing them to multiples of 16
            imageio.mimsave(tmp, list(frames), fps=fps, codec="libx264", macro_block_size=1)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
