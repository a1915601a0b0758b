"""The DINO-WM image pipeline (spec §5.1) on hand-made frames."""

import numpy as np
import pytest
import torch

from wmlab.encoders import ImagePipeline, patch_grid
from wmlab.errors import WmlabError


def constant_frames(value: int, batch: int = 2, height: int = 224, width: int = 224) -> np.ndarray:
    return np.full((batch, height, width, 3), value, dtype=np.uint8)


@pytest.mark.parametrize("size", [196, 224, 112, 98])
def test_output_shape_and_dtype(size):
    out = ImagePipeline(size)(constant_frames(10, batch=3, height=100, width=150))
    assert out.shape == (3, 3, size, size)
    assert out.dtype == torch.float32


def test_dino_wm_normalisation_maps_to_minus_one_one():
    pipeline = ImagePipeline(224)
    assert torch.all(pipeline(constant_frames(0)) == -1.0)
    assert torch.all(pipeline(constant_frames(255)) == 1.0)
    expected = 128 / 255 * 2 - 1
    torch.testing.assert_close(pipeline(constant_frames(128)), torch.full((2, 3, 224, 224), expected))


def test_imagenet_normalisation_is_per_channel():
    frames = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 0, 128
    out = ImagePipeline(224, pixel_norm="imagenet")(frames)
    expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    for channel, value in enumerate(expected):
        torch.testing.assert_close(out[0, channel], torch.full((224, 224), value))


def test_channels_come_out_in_rgb_order():
    frames = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    frames[..., 1] = 255  # green only
    out = ImagePipeline(224)(frames)
    assert torch.all(out[0, 0] == -1) and torch.all(out[0, 1] == 1) and torch.all(out[0, 2] == -1)


def test_centre_crop_keeps_the_middle_of_a_wide_frame():
    # 224 x 448: the shorter side is already 224, so the crop takes columns 112..335 only.
    frames = np.full((1, 224, 448, 3), 255, dtype=np.uint8)
    frames[:, :, 112:336] = 0
    out = ImagePipeline(224)(frames)
    assert torch.all(out == -1.0)


def test_shorter_side_is_resized_to_224_before_the_crop():
    # 112 x 224 -> 224 x 448 -> crop columns 112..335 of the upscaled frame = columns 56..167 of the original.
    frames = np.full((1, 112, 224, 3), 255, dtype=np.uint8)
    frames[:, :, 56:168] = 0
    out = ImagePipeline(224)(frames)
    assert out[0, :, :, 4:-4].max() == -1.0  # a few columns at the edges blend with the white border
    assert out[0, :, :, 0].min() > -1.0


def test_downsizing_averages_like_an_antialiased_resize():
    # A 1-px checkerboard at 224 becomes flat grey at 112 with antialiasing (a plain bilinear would alias).
    checker = (np.indices((224, 224)).sum(axis=0) % 2 * 255).astype(np.uint8)
    frames = np.repeat(checker[None, :, :, None], 3, axis=-1)
    out = ImagePipeline(112)(frames)
    assert out[0, :, 2:-2, 2:-2].abs().max() < 1e-5


def test_accepts_torch_and_rejects_wrong_inputs():
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    assert ImagePipeline(98)(frames).shape == (2, 3, 98, 98)
    with pytest.raises(WmlabError, match="uint8"):
        ImagePipeline(98)(frames.float())
    with pytest.raises(WmlabError, match=r"\(B, H, W, 3\)"):
        ImagePipeline(98)(frames[0])
    with pytest.raises(WmlabError, match="pixel normalisation"):
        ImagePipeline(98, pixel_norm="imagenett")


@pytest.mark.parametrize(("size", "grid"), [(196, 14), (224, 16), (112, 8), (98, 7)])
def test_patch_grid_matches_the_spec_table(size, grid):
    assert patch_grid(size) == grid
