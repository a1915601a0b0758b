"""Optional spatial average pooling of patch tokens (spec latent_actions.md §5.5, `data.pool=k` in the latent config).

Pooling happens when the feature cache is read, never when it is written: the cache always holds the encoder's
native grid, so one cache serves every pooling factor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wmlab.errors import WmlabError


def _grid_side(num_tokens: int) -> int:
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise WmlabError(
            f"cannot pool {num_tokens} tokens: pooling needs a square patch grid (P = g * g), e.g. 64 = 8 x 8; "
            "set data.pool=1 for encoders without a grid (such as `state`)"
        )
    return side


def pooled_token_shape(token_shape: tuple[int, int], k: int) -> tuple[int, int]:
    """Token shape (P, D) after k x k pooling: (P / k^2, D). Raises WmlabError if the grid does not divide."""
    num_tokens, dim = token_shape
    if k < 1:
        raise WmlabError(f"data.pool must be a positive integer, got {k}")
    if k == 1:
        return (num_tokens, dim)
    side = _grid_side(num_tokens)
    if side % k:
        divisors = [d for d in range(1, side + 1) if side % d == 0]
        raise WmlabError(
            f"data.pool={k} does not divide the {side} x {side} patch grid; valid values: {divisors} "
            "(or change the encoder input size)"
        )
    return ((side // k) ** 2, dim)


def pool_tokens(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """Average-pool a row-major patch grid k x k.

    Args:
        tokens: (..., P, D) with P = g * g patch tokens in row-major order (any leading axes, e.g. B or B, T).
        k: pooling factor; must divide g. k = 1 returns ``tokens`` unchanged.

    Returns:
        (..., P / k^2, D), still row-major. 8 x 8 -> 4 x 4 = 16 tokens for k = 2; 14 x 14 -> 7 x 7 = 49.
    """
    num_tokens, dim = tokens.shape[-2:]
    pooled_shape = pooled_token_shape((num_tokens, dim), k)
    if k == 1:
        return tokens
    side = math.isqrt(num_tokens)
    lead = tokens.shape[:-2]
    grid = tokens.reshape(-1, side, side, dim).permute(0, 3, 1, 2)  # (N, D, g, g)
    pooled = F.avg_pool2d(grid.float(), kernel_size=k).to(tokens.dtype)  # fp16 caches pool in fp32
    return pooled.permute(0, 2, 3, 1).reshape(*lead, *pooled_shape)
