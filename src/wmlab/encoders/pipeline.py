"""The DINO-WM image pipeline (spec latent_actions.md §5.1), batched in torch.

    uint8 (B, H, W, 3) -> float / 255 -> Resize(224, shorter side) -> CenterCrop(224)
                       -> Normalize(mean 0.5, std 0.5)   # range [-1, 1]
                       -> Resize(S_in)                   # -> float32 (B, 3, S_in, S_in)

Resizes are bilinear with antialiasing (``torch.nn.functional.interpolate``), because torchvision has no CPU build
here. The resize and crop geometry follows ``torchvision.transforms.Resize`` / ``CenterCrop`` exactly (integer
truncation of the long side, rounded crop offsets), so frames of any size give the reference's pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from wmlab.errors import WmlabError, unknown_name_error

CROP_SIZE = 224
"""The reference resizes the shorter side to 224 px and centre-crops 224 x 224 before anything else."""

PIXEL_NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # DINO-WM's normalisation, whatever the weight source; maps [0, 1] to [-1, 1].
    "dino-wm": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # [lib] option (`encoder.pixel_norm=imagenet`): the statistics DINOv2 itself was trained with.
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def as_uint8_images(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Check and convert a batch of frames to a uint8 tensor (B, H, W, 3) on ``device``."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise WmlabError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise WmlabError(
            f"images must be uint8 in [0, 255] (as rendered by the environment), got dtype {images.dtype}; "
            "convert with `(x * 255).round().clip(0, 255).astype(np.uint8)` if you hold floats in [0, 1]"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise WmlabError(
            f"images must have shape (B, H, W, 3), got {tuple(images.shape)}; add a batch axis with images[None] "
            "for a single frame"
        )
    return images.to(device) if device is not None else images


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of float (B, C, H, W) to (B, C, *size); a no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_shorter_side(x: torch.Tensor, short: int) -> torch.Tensor:
    """Resize (B, C, H, W) so the shorter side is ``short``; the long side is truncated like torchvision's."""
    h, w = x.shape[-2:]
    if h <= w:
        size = (short, int(short * w / h))
    else:
        size = (int(short * h / w), short)
    return resize(x, size)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop (B, C, H, W) to (B, C, size, size) with torchvision's rounded offsets; H, W >= size."""
    h, w = x.shape[-2:]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


class ImagePipeline:
    """uint8 frames (B, H, W, 3) -> encoder input float32 (B, 3, size, size), as DINO-WM prepares them.

    Args:
        size: S_in, the side of the encoder's input (196 in the paper; 224, 112 or 98 on a CPU).
        pixel_norm: "dino-wm" (0.5 / 0.5, the default and the reference) or "imagenet".
    """

    def __init__(self, size: int = 196, pixel_norm: str = "dino-wm") -> None:
        if size < 14:
            raise WmlabError(f"encoder input size must be at least one 14 px patch, got {size}")
        if pixel_norm not in PIXEL_NORMS:
            raise unknown_name_error("pixel normalisation", pixel_norm, PIXEL_NORMS)
        self.size = int(size)
        self.pixel_norm = pixel_norm
        mean, std = PIXEL_NORMS[pixel_norm]
        self._mean = torch.tensor(mean).view(1, 3, 1, 1)
        self._std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """Prepare frames. images: uint8 (B, H, W, 3). Returns float32 (B, 3, size, size) on ``device``."""
        x = as_uint8_images(images, device)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        x = center_crop(resize_shorter_side(x, CROP_SIZE), CROP_SIZE)
        x = (x - self._mean.to(x.device)) / self._std.to(x.device)
        return resize(x, (self.size, self.size))

    def __repr__(self) -> str:
        return f"ImagePipeline(size={self.size}, pixel_norm={self.pixel_norm!r})"


def patch_grid(size: int, patch: int = 14) -> int:
    """Side of the patch grid a ViT with ``patch`` px patches gives at input side ``size`` (196 -> 14)."""
    return size // patch
