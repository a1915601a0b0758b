"""The original DINO-WM PushT on-disk format: import into an :class:`EpisodeStore`, and the 1k / 10k subset recipe.

Format, per split folder ``train/`` and ``val/``::

    states.pth  velocities.pth  rel_actions.pth  abs_actions.pth   torch tensors (N, 246, D), zero-padded in time,
                                                                     D = 5 for states, 2 for the others
    seq_lengths.pkl                                                  N valid lengths
    obses/episode_<i>.mp4                                            T_i RGB frames (index padded to >= 3 digits)

Everything that can be checked without decoding every video (lengths, array shapes, each video present and
non-empty, the first video's frames) is checked before the output folder is created, so a malformed source leaves
nothing behind. A video that turns out undecodable later stops the import with an error naming it; the episodes
before it stay committed and re-running the same command after fixing the file resumes there.

The ``.pkl`` and ``.pth`` files are unpickled: import only datasets from sources you trust.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.data.trajectories import VECTOR_FIELDS, EpisodeStore
from wmlab.errors import WmlabError
from wmlab.locks import exclusive_writer
from wmlab.progress import progress_bar, say

ARRAYS = ("states", "velocities", "rel_actions", "abs_actions")
KNOWN = {f"{a}.pth" for a in ARRAYS} | {"seq_lengths.pkl", "shapes.pkl", "obses"}
_VIDEO = re.compile(r"^episode_(\d+)\.mp4$")
_RESTORE = "restore it from the original DINO-WM dataset"


def _reason(error: BaseException) -> str:
    """An exception in a few words: its first line and, for ffmpeg's long reports, its last."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text += f" ... {lines[-1]}"
    return f"{type(error).__name__}: {text[:300]}"


def _load_tensor(path: Path) -> np.ndarray:
    import torch

    if not path.exists():
        raise WmlabError(f"missing {path}: a DINO-WM split needs {', '.join(sorted(KNOWN - {'shapes.pkl'}))}")
    try:
        value = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise WmlabError(f"cannot read {path} ({_reason(e)}); {_RESTORE}") from None
    if not isinstance(value, torch.Tensor):
        raise WmlabError(f"{path} holds a {type(value).__name__}, not a tensor; {_RESTORE}")
    return value.numpy()


def _load_lengths(path: Path) -> list[int]:
    """The (N,) valid lengths in ``seq_lengths.pkl``: a list (or 1-D array / tensor) of positive integers."""
    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - garbage bytes raise many types
        raise WmlabError(f"cannot read {path} ({_reason(e)}); {_RESTORE}") from None
    try:
        lengths = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    except Exception:  # noqa: BLE001 - ragged or exotic contents
        lengths = np.zeros((0, 0))
    if lengths.ndim != 1 or not (np.issubdtype(lengths.dtype, np.integer) and (lengths > 0).all()):
        raise WmlabError(
            f"{path} holds a {type(value).__name__} that is not a list of positive integer episode lengths; {_RESTORE}"
        )
    return [int(x) for x in lengths]


def _videos(folder: Path) -> dict[int, Path]:
    """Episode index -> video path, accepting any zero-padding width."""
    if not folder.is_dir():
        raise WmlabError(f"missing {folder}: the episode videos episode_XXX.mp4")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := _VIDEO.match(p.name))}


def read_split(folder: Path) -> tuple[dict[str, np.ndarray], list[int], dict[int, Path]]:
    """Validated arrays (N, >= max T, D), lengths (N,) and videos of one split folder."""
    if not (folder / "seq_lengths.pkl").exists():
        raise WmlabError(f"missing {folder / 'seq_lengths.pkl'}: is {folder} a DINO-WM split folder (train/ or val/)?")
    lengths = _load_lengths(folder / "seq_lengths.pkl")
    arrays = {name: _load_tensor(folder / f"{name}.pth") for name in ARRAYS}
    longest = max(lengths, default=0)
    for name, array in arrays.items():
        width = VECTOR_FIELDS[name]
        if array.ndim != 3 or array.shape[0] != len(lengths) or array.shape[1] < longest or array.shape[2] != width:
            raise WmlabError(
                f"{folder / name}.pth has shape {tuple(array.shape)}; expected ({len(lengths)}, >= {longest}, "
                f"{width}): one row per length in seq_lengths.pkl, {width} values per step; {_RESTORE}"
            )
    extra = sorted(p.name for p in folder.iterdir() if p.name not in KNOWN)
    if extra:
        warnings.warn(f"ignoring extra files in {folder}: {', '.join(extra)}", stacklevel=2)
    videos = _videos(folder / "obses")
    missing = [i for i in range(len(lengths)) if i not in videos]
    if missing:
        more = "..." if len(missing) > 5 else ""
        raise WmlabError(f"{folder / 'obses'} lacks the videos of episodes {missing[:5]}{more}")
    empty = [str(videos[i]) for i in range(len(lengths)) if videos[i].stat().st_size == 0]
    if empty:
        raise WmlabError(f"{', '.join(empty[:3])}{'...' if len(empty) > 3 else ''} is empty; {_RESTORE}")
    return arrays, lengths, videos


def _read_video(path: Path, length: int) -> np.ndarray:
    """The first ``length`` RGB frames (T, H, W, 3) of a video; more frames than steps are dropped with a warning."""
    import imageio.v2 as imageio

    try:
        frames = np.stack(imageio.mimread(path, memtest=False))
    except Exception as e:  # noqa: BLE001
        raise WmlabError(f"cannot decode {path} ({_reason(e)}); {_RESTORE}") from None
    if len(frames) < length:
        raise WmlabError(f"{path} has {len(frames)} frames but the episode is {length} steps long")
    if len(frames) > length:
        warnings.warn(f"{path} has {len(frames)} frames; keeping the first {length}", stacklevel=2)
    return frames[:length, ..., :3]


def _frame_size(path: Path) -> int:
    """The side S of a video's square frames, from its first frame alone."""
    import imageio.v2 as imageio

    try:
        with imageio.get_reader(path) as reader:
            height, width = reader.get_next_data().shape[:2]
    except Exception as e:  # noqa: BLE001
        raise WmlabError(f"cannot decode {path} ({_reason(e)}); {_RESTORE}") from None
    if height != width:
        raise WmlabError(f"{path} has {width}x{height} frames; the episode store needs square frames")
    return int(height)


def import_dinowm(source: str | Path, out: str | Path, show_progress: bool = True) -> EpisodeStore:
    """Convert a DINO-WM PushT dataset (``train/`` and ``val/``) into an episode store at ``out``.

    Re-running after an interruption resumes after the last committed episode. Another process writing ``out`` at
    the same time is refused (:mod:`wmlab.locks`).
    """
    source, out = Path(source), Path(out)
    splits = [(name, source / name) for name in ("train", "val") if (source / name).is_dir()]
    if not splits:
        raise WmlabError(f"{source} has neither train/ nor val/: not a DINO-WM dataset")
    data = [(name, *read_split(folder)) for name, folder in splits]
    videos = [split_videos[i] for _, _, lengths, split_videos in data for i in range(len(lengths))]
    if not videos:
        raise WmlabError(f"{source} holds no episodes")
    size = _frame_size(videos[0])
    with exclusive_writer(out, "dataset"):  # taken after the checks: a refused source leaves no file at all
        return _write_store(source, out, data, size, show_progress)


def _write_store(source: Path, out: Path, data: list, size: int, show_progress: bool) -> EpisodeStore:
    """Append the checked episodes of ``data`` [(split, arrays, lengths, videos)] to the store at ``out``."""
    origin = f"imported:dinowm:{source.name}"
    if (out / "zarr.json").exists():
        store = EpisodeStore.resume(out)
        if store.attrs.get("origin") != origin or store.image_size != size:
            raise WmlabError(
                f"{out} holds another dataset ({store.attrs.get('origin')}, {store.image_size} px); "
                f"use another --out for {source}"
            )
    else:
        store = EpisodeStore.create(out, size, {"origin": origin, "action_scale": 100})
    done, total = store.num_episodes, sum(len(lengths) for _, _, lengths, _ in data)
    say(
        f"import {source} ({total} episodes) into {out}: "
        + (f"resuming after {done} committed episodes" if done else "fresh dataset"),
        show_progress,
    )
    with progress_bar("import", total, "episodes", show_progress) as advance:
        advance(done)
        index = 0
        for name, arrays, lengths, videos in data:
            for i, length in enumerate(lengths):
                if index >= done:
                    frames = _read_video(videos[i], length)
                    if frames.shape[1:3] != (size, size):
                        raise WmlabError(f"{videos[i]} is {frames.shape[2]}x{frames.shape[1]}, other videos {size}px")
                    episode = {k: arrays[k][i, :length] for k in ARRAYS}
                    store.append_episode({"images": frames, **episode}, name)
                    advance(1)
                index += 1
    store.finalize({"source": str(source)})
    return store


def subset_dinowm(source: str | Path, out: str | Path, n_total: int, seed: int = 0) -> dict[str, Any]:
    """The fork's 1k / 10k subset recipe, from the original ``train`` split, in the on-disk format."""
    import torch

    source, out = Path(source), Path(out)
    arrays, lengths, videos = read_split(source / "train")
    n_orig = len(lengths)
    if n_total > n_orig:
        raise WmlabError(f"cannot draw {n_total} episodes from {n_orig}")
    rng = np.random.default_rng(seed + n_total)
    sampled = rng.choice(n_orig, size=n_total, replace=False)
    perm = rng.permutation(n_total)
    n_train = round(0.9 * n_total)
    picks = {"train": np.sort(sampled[perm[:n_train]]), "val": np.sort(sampled[perm[n_train:]])}
    if out.exists() and any(out.iterdir()):
        raise WmlabError(f"{out} exists; choose another --out")
    for split, indices in picks.items():
        folder = out / split
        (folder / "obses").mkdir(parents=True)
        for name in ARRAYS:
            torch.save(torch.as_tensor(arrays[name][indices]), folder / f"{name}.pth")
        with open(folder / "seq_lengths.pkl", "wb") as f:
            pickle.dump([lengths[i] for i in indices], f)
        width = max(3, len(str(len(indices) - 1)))
        for new, old in enumerate(indices):
            shutil.copyfile(videos[int(old)], folder / "obses" / f"episode_{new:0{width}d}.mp4")
    info = {
        "source": str(source),
        "n_total": n_total,
        "seed": seed,
        "rng": f"default_rng({seed + n_total})",
        "n_train": n_train,
        "train_indices": picks["train"].tolist(),
        "val_indices": picks["val"].tolist(),
    }
    atomic_write_text(out / "subset_info.json", json.dumps(info) + "\n")
    return info
