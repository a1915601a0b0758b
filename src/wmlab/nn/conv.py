"""DreamerV3 convolutional image encoder and decoder for 64x64 images (spec/dali.md §3.3).

Stride-2 4x4 convolutions with padding 1 (64 -> 32 -> 16 -> 8 -> 4), LayerNorm over channels only (channel-last
per pixel, not over C x H x W), SiLU. The decoder mirrors it and adds 0.5 to its output (no sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from wmlab.nn.layers import init_hidden_, init_output_, layer_norm


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of a (N, C, H, W) map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = layer_norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stages(image_size: int, min_size: int = 4) -> int:
    stages, size = 0, image_size
    while size > min_size:
        size //= 2
        stages += 1
    return stages


class ConvEncoder(nn.Module):
    """uint8 images (..., S, S, 3) -> features (..., 4 * 4 * 8 * depth) for S = 64.

    Args:
        depth: channels of the first stage; stages double it (32: 32, 64, 128, 256).
        image_size: side S of the (square) input.
    """

    def __init__(self, depth: int = 32, image_size: int = 64):
        super().__init__()
        layers, channels = [], 3
        stages = _stages(image_size)
        for i in range(stages):
            out = depth * 2**i
            conv = nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=False)
            init_hidden_(conv.weight)
            layers += [conv, ChannelNorm(out), nn.SiLU()]
            channels = out
        self.net = nn.Sequential(*layers)
        self.image_size = image_size
        self.out_dim = channels * (image_size // 2**stages) ** 2

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.net(x).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """features (..., in_dim) -> images (..., S, S, 3) as floats whose targets are pixel values in [0, 1].

    Args:
        in_dim: feature size ([h, z] or [h, z, context]).
        depth: matches the encoder.
        image_size: side S of the output.
    """

    def __init__(self, in_dim: int, depth: int = 32, image_size: int = 64):
        super().__init__()
        stages = _stages(image_size)
        self.start_size = image_size // 2**stages
        self.start_channels = depth * 2 ** (stages - 1)
        self.project = nn.Linear(in_dim, self.start_channels * self.start_size**2)
        init_hidden_(self.project.weight)
        nn.init.zeros_(self.project.bias)
        layers, channels = [], self.start_channels
        for i in reversed(range(stages - 1)):
            out = depth * 2**i
            conv = nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1, bias=False)
            init_hidden_(conv.weight)
            layers += [conv, ChannelNorm(out), nn.SiLU()]
            channels = out
        final = nn.ConvTranspose2d(channels, 3, 4, stride=2, padding=1)
        init_output_(final.weight)
        nn.init.zeros_(final.bias)
        self.net = nn.Sequential(*layers, final)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        x = self.project(features.reshape(-1, features.shape[-1]))
        x = x.reshape(-1, self.start_channels, self.start_size, self.start_size)
        x = self.net(x).permute(0, 2, 3, 1) + 0.5
        return x.reshape(*lead, *x.shape[1:])
