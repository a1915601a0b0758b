"""A frozen ViT (``transformers.Dinov2Model``) behind the DINO-WM image pipeline: frames in, patch tokens out.

Shared by `dinov2-s14` (pretrained weights, :mod:`wmlab.encoders.dinov2`) and `random-vit` (seeded random init,
:mod:`wmlab.encoders.random_vit`). Tokens are the final-LayerNorm outputs ("x_norm_patchtokens" in the torch-hub
model); the CLS token is dropped unless ``tokens="cls"`` (the paper's CLS-only ablation, one token).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import transformers
from transformers import Dinov2Config, Dinov2Model

from wmlab.encoders.base import WeightsInfo
from wmlab.encoders.pipeline import ImagePipeline, patch_grid
from wmlab.errors import WmlabError, unknown_name_error

COMPUTE_DTYPES = ("fp32", "bf16")
TOKEN_KINDS = ("patch", "cls")


def dinov2_s14_config() -> Dinov2Config:
    """The ViT-S/14 architecture of DINOv2 (12 x 384, 6 heads, MLP 1536, patch 14, 37 x 37 position grid)."""
    return Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
        attn_implementation="sdpa",
    )


def same_architecture(a: Dinov2Config, b: Dinov2Config) -> bool:
    """Whether two configs build networks with the same parameter shapes and the same forward."""
    fields = ("hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "patch_size", "image_size")
    fields += ("use_swiglu_ffn", "qkv_bias", "hidden_act", "layer_norm_eps")
    return all(getattr(a, f, None) == getattr(b, f, None) for f in fields)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs on ``device`` (every CPU build of torch; CUDA only on Ampere and newer)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


class ViTEncoder:
    """Frozen ViT encoder: uint8 frames (B, H, W, 3) -> float32 tokens (B, P, D).

    Args:
        model: a ``Dinov2Model``; it is put in eval mode, frozen and moved to ``device``.
        weights: provenance of the model's weights.
        name: encoder id ("dinov2-s14" or "random-vit").
        size: S_in, the input side in px; P = (size // 14)^2 patch tokens (196 -> 196, 224 -> 256, 112 -> 64).
        pixel_norm: "dino-wm" (0.5 / 0.5, the reference) or "imagenet".
        dtype: "fp32", or "bf16" for bf16 autocast (features differ slightly; recorded in the metadata).
        tokens: "patch" (default) or "cls" (P = 1).
        device: where the model runs.
    """

    input_kind = "image"

    def __init__(
        self,
        model: Dinov2Model,
        weights: WeightsInfo,
        *,
        name: str = "dinov2-s14",
        size: int = 196,
        pixel_norm: str = "dino-wm",
        dtype: str = "fp32",
        tokens: str = "patch",
        device: torch.device | str = "cpu",
    ) -> None:
        if dtype not in COMPUTE_DTYPES:
            raise unknown_name_error("encoder compute dtype", dtype, COMPUTE_DTYPES)
        if tokens not in TOKEN_KINDS:
            raise unknown_name_error("encoder token kind", tokens, TOKEN_KINDS)
        self.device = torch.device(device)
        if dtype == "bf16" and not bf16_supported(self.device):
            raise WmlabError(f"bf16 autocast is not supported on {self.device}; use encoder.dtype=fp32")
        self.name = name
        self.weights = weights
        self.pipeline = ImagePipeline(size, pixel_norm)
        self.dtype = dtype
        self.tokens = tokens
        self.model = model.to(self.device).eval().requires_grad_(False)

    @property
    def size(self) -> int:
        return self.pipeline.size

    @property
    def token_shape(self) -> tuple[int, int]:
        """(P, D): (grid^2, hidden) for patch tokens, (1, hidden) for the CLS token."""
        config = self.model.config
        num = 1 if self.tokens == "cls" else patch_grid(self.size, config.patch_size) ** 2
        return (num, config.hidden_size)

    @torch.no_grad()  # not inference_mode: planners differentiate costs that use these tokens (e.g. goal features)
    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encode frames. images: uint8 (B, H, W, 3), any H, W. Returns float32 (B, P, D) on the encoder's device."""
        pixels = self.pipeline(images, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16"):
            hidden = self.model(pixel_values=pixels).last_hidden_state  # (B, 1 + P, D), after the final LayerNorm
        out = hidden[:, :1] if self.tokens == "cls" else hidden[:, 1:]
        return out.float()

    def metadata(self) -> dict[str, Any]:
        """What the feature cache records (spec §5.6); two encoders with equal metadata give equal features."""
        return {
            "encoder": self.name,
            "implementation": f"transformers {transformers.__version__} Dinov2Model",
            "weights": self.weights.description,
            "weights_source": self.weights.source,
            "weights_sha256": self.weights.sha256,
            "official_weights": self.weights.official,
            "size": self.size,
            "pixel_norm": self.pipeline.pixel_norm,
            "dtype": self.dtype,
            "tokens": self.tokens,
            "token_shape": list(self.token_shape),
        }

    def __repr__(self) -> str:
        return (
            f"ViTEncoder(name={self.name!r}, size={self.size}, tokens={self.token_shape}, dtype={self.dtype!r}, "
            f"weights={self.weights.source!r})"
        )
