"""`random-vit`: a seeded, randomly initialised ViT-S/14 behind the same pipeline (spec §5.4).

The control for "does pretraining matter": same architecture, same image pipeline, same token shapes as
`dinov2-s14`, but transformers' default initialisation (truncated normal, std 0.02; layer scale 1.0) drawn from
``seed``. The same seed gives the same weights, and the caller's global RNG state is left untouched.
"""

from __future__ import annotations

import torch
from transformers import Dinov2Config, Dinov2Model

from wmlab.encoders.base import WeightsInfo
from wmlab.encoders.checkpoint_layout import weights_sha256
from wmlab.encoders.vit_encoder import ViTEncoder, dinov2_s14_config

ENCODER_ID = "random-vit"


def random_vit_model(seed: int = 0, config: Dinov2Config | None = None) -> Dinov2Model:
    """A ``Dinov2Model`` with weights drawn from ``seed`` (ViT-S/14 unless ``config`` says otherwise).

    transformers initialises through the global torch RNG and takes no generator, so the draw happens inside a
    forked RNG seeded with ``seed``: reproducible, and invisible to the caller's random stream.
    """
    config = config if config is not None else dinov2_s14_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config)
    return model.eval()


def random_vit_encoder(
    size: int = 196,
    seed: int = 0,
    *,
    pixel_norm: str = "dino-wm",
    dtype: str = "fp32",
    tokens: str = "patch",
    device: torch.device | str = "cpu",
    config: Dinov2Config | None = None,
) -> ViTEncoder:
    """The `random-vit` encoder: uint8 (B, H, W, 3) -> float32 (B, (size // 14)^2, 384) tokens; see ViTEncoder."""
    model = random_vit_model(seed, config)
    info = WeightsInfo(
        source=f"random-init(seed={seed})",
        description=f"random initialisation (seed {seed}), not pretrained",
        official=False,
        sha256=weights_sha256(model),
    )
    return ViTEncoder(
        model, info, name=ENCODER_ID, size=size, pixel_norm=pixel_norm, dtype=dtype, tokens=tokens, device=device
    )
