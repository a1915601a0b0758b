"""The action decoder's pair cache (spec §7.3): (current tokens, predicted tokens, latent action, real macro action)
rows built once per world model and split, and reused while the world model, seed and window settings match.

Layout inside a latent run directory::

    decoder/pairs/<split>/         written into a temporary folder and renamed into place
        tokens.npy (n, P, E) fp16  current-frame tokens P_t
        pred.npy   (n, P, E) fp16  predicted next-frame tokens P^_{t+1} (only when built with include_pred)
        z.npy      (n, A) fp32     latent action (quantised z_q for la-vq)
        y.npy      (n, fs*2) fp32  normalised macro action, the window's first action row
        meta.json                  count, include_pred, seed, world-model fingerprint, window settings

The world-model fingerprint is ``"<step>:<sha256>"``, the hash taken over the checkpoint's model state (sorted keys,
dtypes, shapes and raw bytes), not over the file: it names the weights, whatever else the checkpoint file holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmlab.atomic import atomic_write_text
from wmlab.errors import WmlabError
from wmlab.latent.train import collate, open_windows
from wmlab.latent.world_model import LatentWorldModel
from wmlab.progress import progress_bar
from wmlab.runs import RunDir

RETRAIN = "train the decoder with `wmlab train decoder {run}`"


def world_model_fingerprint(checkpoint: dict[str, Any]) -> str:
    """``"<step>:<sha256 of the model state>"`` of a latent checkpoint (sorted keys, dtypes, shapes, raw bytes)."""
    digest = hashlib.sha256()
    for key in sorted(checkpoint["model"]):
        value = checkpoint["model"][key]
        if not isinstance(value, torch.Tensor):  # a module's extra state (e.g. the quantiser's): hashed as text
            digest.update(f"{key}|{value!r}|".encode())
            continue
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(value.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return f"{int(checkpoint['step'])}:{digest.hexdigest()}"


def require_latent(model: LatentWorldModel) -> None:
    if model.cfg.variant == "action":
        raise WmlabError(
            "the `action` variant has no action decoder: it plans real actions directly (spec §8.8); "
            "train a decoder only for `la` or `la-vq` runs"
        )


def pair_shapes(model: LatentWorldModel, windows: Any, n: int, include_pred: bool) -> dict[str, tuple]:
    """{name: (shape, dtype)} of ``n`` pairs: tokens / pred (n, P, E) fp16, z (n, A) and y (n, fs * 2) fp32."""
    first = windows[0]
    p, e = first["tokens"].shape[1:]
    shapes = {"tokens": ((n, p, e), np.float16), "z": ((n, model.cfg.action_dim), np.float32)}
    shapes["y"] = ((n, first["actions"].shape[-1]), np.float32)
    if include_pred:
        shapes["pred"] = ((n, p, e), np.float16)
    return shapes


@torch.no_grad()
def build_pairs(
    model: LatentWorldModel,
    windows: Any,
    count: int,
    seed: int,
    device: str | torch.device,
    include_pred: bool,
    batch_size: int = 512,
    show_progress: bool = True,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Decoder training pairs from the first ``count`` windows of a seeded shuffle (spec §7.3), batched.

    Returns tokens (n, P, E) fp16, pred (n, P, E) fp16 (only with ``include_pred``), z (n, A) fp32 and
    y (n, fs * 2) fp32 with n = min(count, len(windows)). ``out`` may supply preallocated arrays (memory maps) to fill.
    A shorter shuffle is a prefix of a longer one, so pairs built for a larger count contain those of a smaller one.
    """
    require_latent(model)
    order = np.random.default_rng(seed).permutation(len(windows))[: min(count, len(windows))]
    n = len(order)
    shapes = pair_shapes(model, windows, n, include_pred)
    arrays = out if out is not None else {k: np.empty(shape, dtype) for k, (shape, dtype) in shapes.items()}
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    try:
        with progress_bar("decoder pairs", n, "pairs", show_progress) as advance:
            for start in range(0, n, batch_size):
                batch = collate(windows, order[start : start + batch_size], device)
                tokens, actions = batch["tokens"], batch["actions"]
                conditioning, _ = model.conditioning(tokens, actions)
                stop = start + len(tokens)
                arrays["tokens"][start:stop] = tokens[:, 0].cpu().numpy().astype(np.float16)
                arrays["z"][start:stop] = conditioning[:, 0].float().cpu().numpy()
                arrays["y"][start:stop] = actions[:, 0].float().cpu().numpy()
                if include_pred:
                    predicted = model.predict(tokens[:, :1], conditioning[:, :1])[:, 0]
                    arrays["pred"][start:stop] = predicted.cpu().numpy().astype(np.float16)
                advance(len(tokens))
    finally:
        model.train(was_training)
    return arrays


def pairs_dir(run: str | Path, split: str) -> Path:
    return RunDir(run).path / "decoder" / "pairs" / split


def load_pairs(run: str | Path, split: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The memory-mapped pair arrays of one split and their metadata."""
    folder = pairs_dir(run, split)
    if not (folder / "meta.json").exists():
        raise WmlabError(f"no decoder pair cache at {folder}; {RETRAIN.format(run=run)}")
    meta = json.loads((folder / "meta.json").read_text())
    names = ("tokens", "pred", "z", "y") if meta["include_pred"] else ("tokens", "z", "y")
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}, meta


def ensure_pairs(
    run: str | Path,
    split: str,
    count: int,
    include_pred: bool,
    model: LatentWorldModel,
    latent_cfg: Any,
    fingerprint: str,
    seed: int,
    device: str | torch.device,
    rebuild: bool = False,
    show_progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reuse the split's pair cache when its fingerprint, seed and window settings match and it holds at least
    ``min(count, windows)`` pairs (and predicted tokens when asked for); otherwise build it atomically.

    Returns arrays cut to the requested count and the metadata.
    """
    windows = open_windows(latent_cfg, split)
    d = latent_cfg.data
    settings = {"split": split, "data": str(d.path), "features": d.features, "pool": d.pool}
    settings.update(history=latent_cfg.model.history, frameskip=latent_cfg.model.frameskip, windows=len(windows))
    wanted = min(count, len(windows))
    folder = pairs_dir(run, split)
    if not rebuild and (folder / "meta.json").exists():
        arrays, meta = load_pairs(run, split)
        same = meta["fingerprint"] == fingerprint and meta["windows"] == settings and meta["seed"] == seed
        if same and meta["count"] >= wanted and (meta["include_pred"] or not include_pred):
            return {k: v[:wanted] for k, v in arrays.items()}, meta
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{split}.tmp-*"):  # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=folder.parent))
    try:
        shapes = pair_shapes(model, windows, wanted, include_pred)
        out = {
            k: np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=dtype, shape=shape)
            for k, (shape, dtype) in shapes.items()
        }
        build_pairs(model, windows, wanted, seed, device, include_pred, show_progress=show_progress, out=out)
        for array in out.values():
            array.flush()
        del out
        meta = {"count": wanted, "include_pred": include_pred, "seed": seed, "fingerprint": fingerprint}
        statistics = {"action_mean": windows.action_mean.tolist(), "action_std": windows.action_std.tolist()}
        meta.update(windows=settings, statistics=statistics, complete=True)
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1) + "\n")
        if folder.exists():  # rename the old cache away first: a directory cannot be replaced while not empty
            old = Path(tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=folder.parent))
            os.replace(folder, old / "old")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_pairs(run, split)
