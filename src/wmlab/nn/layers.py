"""Dense layers with DreamerV3 conventions (spec/dali.md §3.1).

* A Linear followed by a norm has no bias; LayerNorm uses eps 1e-3 with learnable scale and offset.
* Hidden weights: truncated normal (±2 std) with variance 1/fan_avg; output layers: uniform(±sqrt(3/fan_avg));
  reward and critic outputs: zeros. PyTorch's default Kaiming-uniform init is replaced everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LN_EPS = 1e-3
_TRUNC_NORMAL_CORRECTION = 0.87962566103423978  # std of a unit normal truncated to ±2


def fan_avg(weight: torch.Tensor) -> float:
    """(fan_in + fan_out) / 2 of a Linear or (transposed) conv weight; conv fans include the kernel area.

    The average is symmetric, so the (out, in) layout of Linear/Conv and the (in, out) layout of ConvTranspose agree.
    """
    receptive = weight[0][0].numel() if weight.dim() > 2 else 1
    return (weight.shape[0] + weight.shape[1]) * receptive / 2


@torch.no_grad()
def init_hidden_(weight: torch.Tensor) -> torch.Tensor:
    """Truncated normal on ±2 std with variance 1/fan_avg."""
    std = math.sqrt(1.0 / fan_avg(weight)) / _TRUNC_NORMAL_CORRECTION
    return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


@torch.no_grad()
def init_output_(weight: torch.Tensor) -> torch.Tensor:
    """Uniform on ±sqrt(3/fan_avg) (distribution and logits layers)."""
    limit = math.sqrt(3.0 / fan_avg(weight))
    return nn.init.uniform_(weight, -limit, limit)


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class DenseBlock(nn.Sequential):
    """Linear (no bias) -> LayerNorm -> SiLU. (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, out_dim: int):
        linear = nn.Linear(in_dim, out_dim, bias=False)
        init_hidden_(linear.weight)
        super().__init__(linear, layer_norm(out_dim), nn.SiLU())
        self.out_dim = out_dim


class MLP(nn.Sequential):
    """``layers`` DenseBlocks of ``units`` each. (..., in_dim) -> (..., units), or (..., in_dim) if layers == 0."""

    def __init__(self, in_dim: int, units: int, layers: int):
        blocks = [DenseBlock(in_dim if i == 0 else units, units) for i in range(layers)]
        super().__init__(*blocks)
        self.out_dim = units if layers else in_dim


class OutputLinear(nn.Linear):
    """Linear with bias producing distribution parameters; ``zero=True`` for reward and critic outputs."""

    def __init__(self, in_dim: int, out_dim: int, zero: bool = False):
        super().__init__(in_dim, out_dim)
        with torch.no_grad():
            if zero:
                self.weight.zero_()
            else:
                init_output_(self.weight)
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Distribution parameters stay float32 under bf16 autocast (as DreamerV3 keeps its output heads)."""
        return super().forward(x).float()


class MLPHead(nn.Module):
    """MLP trunk then an :class:`OutputLinear`. (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, units: int, layers: int, zero_output: bool = False):
        super().__init__()
        self.trunk = MLP(in_dim, units, layers)
        self.out = OutputLinear(self.trunk.out_dim, out_dim, zero=zero_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x))
