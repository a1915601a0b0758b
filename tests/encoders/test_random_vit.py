"""`random-vit`: a seeded random ViT-S/14 behind the same pipeline (spec §5.4)."""

import numpy as np
import torch

from tests.encoders.conftest import tiny_config
from wmlab.encoders.random_vit import random_vit_encoder, random_vit_model


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (random_vit_model(seed, tiny_config()) for seed in (3, 3, 4))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(
        a.embeddings.patch_embeddings.projection.weight, c.embeddings.patch_embeddings.projection.weight
    )


def test_global_rng_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_vit_model(0, tiny_config())
    assert torch.equal(torch.rand(3), expected)


def test_encoder_is_reproducible_and_shaped_like_dinov2():
    frames = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    one = random_vit_encoder(56, seed=7, config=tiny_config())
    two = random_vit_encoder(56, seed=7, config=tiny_config())
    assert one.token_shape == (16, 32)
    assert torch.equal(one.encode(frames), two.encode(frames))
    meta = one.metadata()
    assert meta["encoder"] == "random-vit" and meta["weights_source"] == "random-init(seed=7)"
    assert meta["weights_sha256"] == two.metadata()["weights_sha256"]
    assert meta["weights_sha256"] != random_vit_encoder(56, seed=8, config=tiny_config()).metadata()["weights_sha256"]


def test_default_architecture_is_vit_s14():
    encoder = random_vit_encoder(112, seed=0)
    assert encoder.token_shape == (64, 384)
    assert sum(p.numel() for p in encoder.model.parameters()) == 22_056_576  # 22.06 M (with the unused mask token)
