"""The original DINO-WM PushT on-disk format: import into an :class:`EpisodeStore`, and the 1k / 10k subset recipe.

Format (spec/latent_actions.md §4.4), per split folder ``train/`` and ``val/``::

    states.pth  velocities.pth  rel_actions.pth  abs_actions.pth   torch tensors (N, 246, D), zero-padded in time
    seq_lengths.pkl                                                  N valid lengths
    obses/episode_<i>.mp4                                            T_i RGB frames (index padded to >= 3 digits)

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
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError
from wmlab.runs import progress_bar

ARRAYS = ("states", "velocities", "rel_actions", "abs_actions")
KNOWN = {f"{a}.pth" for a in ARRAYS} | {"seq_lengths.pkl", "shapes.pkl", "obses"}
_VIDEO = re.compile(r"^episode_(\d+)\.mp4$")


def _load_tensor(path: Path) -> np.ndarray:
    import torch

    if not path.exists():
        raise WmlabError(f"missing {path}: a DINO-WM split needs {', '.join(sorted(KNOWN - {'shapes.pkl'}))}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False).numpy()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise WmlabError(f"cannot read {path} ({type(e).__name__}: {e})") from None


def _videos(folder: Path) -> dict[int, Path]:
    """Episode index -> video path, accepting any zero-padding width."""
    if not folder.is_dir():
        raise WmlabError(f"missing {folder}: the episode videos episode_XXX.mp4")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := _VIDEO.match(p.name))}


def read_split(folder: Path) -> tuple[dict[str, np.ndarray], list[int], dict[int, Path]]:
    """Validated arrays (N, >= max T, D), lengths (N,) and videos of one split folder."""
    if not (folder / "seq_lengths.pkl").exists():
        raise WmlabError(f"missing {folder / 'seq_lengths.pkl'}: is {folder} a DINO-WM split folder (train/ or val/)?")
    with open(folder / "seq_lengths.pkl", "rb") as f:
        lengths = [int(x) for x in pickle.load(f)]
    arrays = {name: _load_tensor(folder / f"{name}.pth") for name in ARRAYS}
    for name, array in arrays.items():
        if array.shape[0] != len(lengths) or array.shape[1] < max(lengths, default=0):
            raise WmlabError(
                f"{folder / name}.pth has shape {array.shape}; expected ({len(lengths)}, >= "
                f"{max(lengths, default=0)}, ...) to match seq_lengths.pkl"
            )
    extra = sorted(p.name for p in folder.iterdir() if p.name not in KNOWN)
    if extra:
        warnings.warn(f"ignoring extra files in {folder}: {', '.join(extra)}", stacklevel=2)
    videos = _videos(folder / "obses")
    missing = [i for i in range(len(lengths)) if i not in videos]
    if missing:
        more = "..." if len(missing) > 5 else ""
        raise WmlabError(f"{folder / 'obses'} lacks the videos of episodes {missing[:5]}{more}")
    return arrays, lengths, videos


def _read_video(path: Path, length: int) -> np.ndarray:
    import imageio.v2 as imageio

    try:
        frames = np.stack(imageio.mimread(path, memtest=False))
    except Exception as e:  # noqa: BLE001
        raise WmlabError(f"cannot decode {path} ({type(e).__name__}: {e})") from None
    if len(frames) < length:
        raise WmlabError(f"{path} has {len(frames)} frames but the episode is {length} steps long")
    if len(frames) > length:
        warnings.warn(f"{path} has {len(frames)} frames; keeping the first {length}", stacklevel=2)
    return frames[:length, ..., :3]


def import_dinowm(source: str | Path, out: str | Path, show_progress: bool = True) -> EpisodeStore:
    """Convert a DINO-WM PushT dataset (``train/`` and ``val/``) into an episode store at ``out``.

    Re-running after an interruption resumes after the last imported episode.
    """
    source, out = Path(source), Path(out)
    splits = [(name, source / name) for name in ("train", "val") if (source / name).is_dir()]
    if not splits:
        raise WmlabError(f"{source} has neither train/ nor val/: not a DINO-WM dataset")
    data = [(name, *read_split(folder)) for name, folder in splits]
    first = next(iter(data[0][3].values()))
    size = _read_video(first, 1).shape[1]
    if (out / "zarr.json").exists():
        store = EpisodeStore.resume(out)
    else:
        store = EpisodeStore.create(out, size, {"origin": f"imported:dinowm:{source.name}", "action_scale": 100})
    done, total = store.num_episodes, sum(len(lengths) for _, _, lengths, _ in data)
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
    """The fork's 1k / 10k subset recipe (spec §4.5), from the original ``train`` split, in the on-disk format."""
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
