"""Shared fixtures of the encoder tests: tiny ViTs (seconds, not minutes) and offline weight lookups."""

import pytest
import torch

from wmlab.encoders import dinov2


def tiny_config():
    """A 2-layer, 32-wide DINOv2 with 14 px patches and a 4 x 4 position grid (56 px native)."""
    from transformers import Dinov2Config

    return Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=56,
        layer_norm_eps=1e-6,
        attn_implementation="sdpa",
    )


def tiny_model(seed: int = 0):
    """A tiny Dinov2Model with every parameter random (layer scales and norms too, so no mapping hides)."""
    from wmlab.encoders.random_vit import random_vit_model

    model = random_vit_model(seed, tiny_config())
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model


@pytest.fixture
def no_official_weights(monkeypatch, tmp_path):
    """Make the official sources certainly absent: an unknown HF id, offline, and an empty torch-hub folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(dinov2, "OFFICIAL_HF_ID", "wmlab-tests/no-such-dinov2")
