"""Spatial pooling of patch tokens (spec §5.5)."""

import pytest
import torch

from wmlab.encoders import pool_tokens, pooled_token_shape
from wmlab.errors import WmlabError


@pytest.mark.parametrize(("tokens", "k", "pooled"), [(64, 2, 16), (196, 2, 49), (256, 4, 16), (49, 7, 1), (49, 1, 49)])
def test_pooling_shapes(tokens, k, pooled):
    x = torch.randn(3, tokens, 5)
    assert pool_tokens(x, k).shape == (3, pooled, 5)
    assert pooled_token_shape((tokens, 5), k) == (pooled, 5)


def test_pooling_averages_k_by_k_blocks_in_row_major_order():
    grid = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)  # 4 x 4 grid, value = row * 4 + col
    pooled = pool_tokens(grid, 2)[0, :, 0]
    assert pooled.tolist() == [2.5, 4.5, 10.5, 12.5]


def test_pooling_keeps_leading_axes_and_dtype():
    x = torch.randn(2, 3, 64, 8).half()
    out = pool_tokens(x, 2)
    assert out.shape == (2, 3, 16, 8) and out.dtype == torch.float16


def test_pooling_rejects_grids_it_does_not_divide():
    with pytest.raises(WmlabError, match=r"valid values: \[1, 7\]"):
        pool_tokens(torch.randn(1, 49, 4), 2)
    with pytest.raises(WmlabError, match="square patch grid"):
        pool_tokens(torch.randn(1, 5, 4), 2)
    with pytest.raises(WmlabError, match="positive"):
        pooled_token_shape((64, 4), 0)
