"""Key-name conversions between the torch-hub, transformers-checkpoint and installed DINOv2 layouts."""

import pytest
import torch

from tests.encoders.conftest import tiny_model
from wmlab.encoders.checkpoint_layout import (
    checkpoint_to_hub,
    hub_to_checkpoint,
    is_hub_layout,
    load_checkpoint_layout,
    to_checkpoint_layout,
    to_installed_layout,
    unwrap_checkpoint,
    weights_sha256,
)
from wmlab.errors import WmlabError


def test_hub_layout_has_the_facebookresearch_names_and_fused_qkv():
    hub = checkpoint_to_hub(to_checkpoint_layout(tiny_model().state_dict()))
    assert is_hub_layout(hub)
    assert hub["pos_embed"].shape == (1, 1 + 16, 32)
    assert hub["blocks.1.attn.qkv.weight"].shape == (96, 32)
    assert hub["blocks.1.attn.qkv.bias"].shape == (96,)
    assert {"cls_token", "mask_token", "patch_embed.proj.weight", "norm.bias", "blocks.0.ls2.gamma"} <= set(hub)
    assert not any("attention" in k for k in hub)


def test_hub_round_trip_is_lossless():
    checkpoint = to_checkpoint_layout(tiny_model().state_dict())
    back = hub_to_checkpoint(checkpoint_to_hub(checkpoint))
    assert set(back) == set(checkpoint)
    for name, tensor in checkpoint.items():
        assert torch.equal(back[name], tensor), name


def test_block_chunked_hub_keys_are_understood():
    hub = checkpoint_to_hub(to_checkpoint_layout(tiny_model().state_dict()))
    chunked = {
        k.replace("blocks.1.", "blocks.0.1.").replace("blocks.0.norm", "blocks.0.0.norm"): v for k, v in hub.items()
    }
    assert set(hub_to_checkpoint(chunked)) == set(hub_to_checkpoint(hub))


def test_installed_layout_round_trip_loads_strictly():
    model, other = tiny_model(0), tiny_model(1)
    checkpoint = to_checkpoint_layout(model.state_dict())
    assert all(".q_proj." not in k for k in checkpoint)  # always the on-disk names
    assert set(to_installed_layout(checkpoint, other)) == set(other.state_dict())
    load_checkpoint_layout(other, checkpoint, "test weights")
    assert weights_sha256(other) == weights_sha256(model)


def test_wrapped_and_prefixed_checkpoints_are_unwrapped():
    hub = checkpoint_to_hub(to_checkpoint_layout(tiny_model().state_dict()))
    wrapped = {"model": {f"module.{k}": v for k, v in hub.items()}, "epoch": 3}
    assert set(unwrap_checkpoint(wrapped)) == set(hub)
    with pytest.raises(WmlabError, match="state dict"):
        unwrap_checkpoint({"weights": [1, 2]})


def test_unknown_hub_keys_and_shape_mismatches_are_errors():
    hub = checkpoint_to_hub(to_checkpoint_layout(tiny_model().state_dict()))
    with pytest.raises(WmlabError, match="register_tokens"):
        hub_to_checkpoint({**hub, "register_tokens": torch.zeros(1, 4, 32)})
    checkpoint = hub_to_checkpoint(hub)
    checkpoint["layernorm.weight"] = torch.zeros(33)
    del checkpoint["encoder.layer.0.norm1.bias"]
    with pytest.raises(WmlabError, match=r"missing.*norm1\.bias.*wrong shape.*layernorm\.weight"):
        load_checkpoint_layout(tiny_model(), checkpoint, "test weights")


def test_weights_hash_changes_with_the_weights():
    assert weights_sha256(tiny_model(0)) == weights_sha256(tiny_model(0))
    assert weights_sha256(tiny_model(0)) != weights_sha256(tiny_model(1))
