import math

import pytest
import torch

from wmlab.nn.transformer import (
    LearnedPositionEmbedding,
    MultiHeadAttention,
    RotaryEmbedding,
    Transformer,
    TransformerBlock,
    additive_mask,
    apply_rope,
    causal_mask,
    frame_causal_mask,
    rope_frequencies,
)

FRAMES, PATCHES, DIM = 3, 4, 32


def _seeded(build, seed=0):
    """Build a module with its PyTorch-default init drawn from a fixed seed, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def _small_transformer(rope=False):
    return _seeded(lambda: Transformer(DIM, depth=2, heads=2, head_dim=16, mlp_dim=64, rope=rope))


def _tokens(gen, *shape):
    return torch.randn(*shape, generator=gen)


def _naive_attention(q, k, v, mask):
    """softmax(q kᵀ / sqrt(d) + M) v written out, the reference for the SDPA path."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + additive_mask(mask, q.dtype)
    return scores.softmax(-1) @ v


def test_frame_causal_mask_is_block_lower_triangular():
    mask = frame_causal_mask(FRAMES, PATCHES)
    expected = torch.kron(torch.ones(FRAMES, FRAMES).tril(), torch.ones(PATCHES, PATCHES)).bool()
    assert mask.dtype == torch.bool and torch.equal(mask, expected)
    assert frame_causal_mask(1, PATCHES).all(), "one frame: full attention"
    assert torch.equal(mask[: 2 * PATCHES, : 2 * PATCHES], frame_causal_mask(2, PATCHES)), "slicing gives fewer frames"
    assert torch.equal(frame_causal_mask(5, 1), causal_mask(5))
    assert torch.equal(additive_mask(causal_mask(2)), torch.tensor([[0.0, -math.inf], [0.0, 0.0]]))


def test_frame_causal_mask_hides_future_frames_in_a_transformer():
    model, gen = _small_transformer(), torch.Generator().manual_seed(1)
    mask = frame_causal_mask(FRAMES, PATCHES)
    x = _tokens(gen, 2, FRAMES, PATCHES, DIM)
    base = model(x.flatten(1, 2), mask).unflatten(1, (FRAMES, PATCHES))
    for t in range(FRAMES - 1):
        changed = x.clone()
        changed[:, t + 1] += _tokens(gen, 2, PATCHES, DIM)
        out = model(changed.flatten(1, 2), mask).unflatten(1, (FRAMES, PATCHES))
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
        assert (out[:, t + 1] - base[:, t + 1]).abs().amax(-1).min() > 1e-3, "every token of frame t+1 changes"


def test_tokens_within_a_frame_attend_to_each_other():
    model, gen = _small_transformer(), torch.Generator().manual_seed(2)
    mask = frame_causal_mask(FRAMES, PATCHES)
    x = _tokens(gen, 1, FRAMES, PATCHES, DIM)
    base = model(x.flatten(1, 2), mask).unflatten(1, (FRAMES, PATCHES))
    changed = x.clone()
    changed[:, 1, -1] += _tokens(gen, DIM)  # the last patch of the middle frame (a constant shift would vanish in LN)
    out = model(changed.flatten(1, 2), mask).unflatten(1, (FRAMES, PATCHES))
    torch.testing.assert_close(out[:, 0], base[:, 0], rtol=0, atol=1e-6)
    assert (out[:, 1:] - base[:, 1:]).abs().amax(-1).min() > 1e-4, "all patches of frames >= 1 see the change"


def test_sdpa_attention_matches_naive_softmax_reference():
    gen = torch.Generator().manual_seed(3)
    attn = _seeded(lambda: MultiHeadAttention(DIM, heads=2, head_dim=16))
    mask = frame_causal_mask(FRAMES, PATCHES)
    x = _tokens(gen, 2, FRAMES * PATCHES, DIM)
    q, k, v = attn.qkv(x).unflatten(-1, (3, 2, 16)).permute(2, 0, 3, 1, 4)
    reference = attn.out(_naive_attention(q, k, v, mask).transpose(1, 2).flatten(-2))
    torch.testing.assert_close(attn(x, mask), reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(attn(x, additive_mask(mask)), reference, rtol=0, atol=1e-5)


def test_attention_treats_all_leading_axes_as_batch():
    gen = torch.Generator().manual_seed(4)
    attn = _seeded(lambda: MultiHeadAttention(DIM, heads=2, head_dim=16, rope=True))
    x = _tokens(gen, 2, 3, 5, DIM)  # e.g. (B, slots, T, D) for temporal attention
    out = attn(x, causal_mask(5), rope_offset=2)
    assert out.shape == x.shape
    torch.testing.assert_close(out[1, 2], attn(x[1, 2], causal_mask(5), rope_offset=2), rtol=0, atol=1e-6)


def test_rope_rotates_interleaved_pairs_and_is_identity_at_position_zero():
    gen, rope = torch.Generator().manual_seed(5), RotaryEmbedding(64)
    x = _tokens(gen, 2, 4, 64)
    torch.testing.assert_close(rope(x)[:, 0], x[:, 0], rtol=0, atol=0)
    omega = 10000.0 ** (-torch.arange(32, dtype=torch.float64) * 2 / 64)
    torch.testing.assert_close(rope_frequencies(64), omega.float())
    # Pair (x_2i, x_2i+1) as a complex number, rotated by e^{i t ω_i}.
    pairs = torch.complex(x[..., 0::2].double(), x[..., 1::2].double())
    angles = (torch.arange(3, 7, dtype=torch.float64)[:, None] * omega).unsqueeze(0)
    expected = torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2)
    torch.testing.assert_close(rope(x, offset=3), expected.float(), rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_relative_offset():
    gen, rope = torch.Generator().manual_seed(6), RotaryEmbedding(16, cache_len=4)
    q, k = _tokens(gen, 8, 16), _tokens(gen, 8, 16)
    scores = rope(q) @ rope(k).T
    for shift in (1, 7, 100):  # 100 also grows the cache
        torch.testing.assert_close(rope(q, shift) @ rope(k, shift).T, scores, rtol=1e-4, atol=1e-4)
    cos, sin = rope.cos_sin(8, 0)
    unrotated = q @ k.T
    assert not torch.allclose(apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).T, unrotated, atol=1e-2)
    torch.testing.assert_close(scores.diagonal(), unrotated.diagonal(), rtol=1e-5, atol=1e-5)  # same position


def test_rope_transformer_is_shift_invariant_but_order_aware():
    model, gen = _small_transformer(rope=True), torch.Generator().manual_seed(7)
    x, mask = _tokens(gen, 2, 5, DIM), causal_mask(5)
    torch.testing.assert_close(model(x, mask, rope_offset=9), model(x, mask), rtol=1e-4, atol=1e-4)
    order = torch.tensor([4, 2, 0, 3, 1])
    plain = _small_transformer(rope=False)
    torch.testing.assert_close(plain(x[:, order]), plain(x)[:, order], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(model(x[:, order]), model(x)[:, order], atol=1e-3), "RoPE breaks permutation symmetry"


def _block_params(dim, heads, head_dim, mlp_dim):
    inner = heads * head_dim
    return 2 * dim + 3 * dim * inner + inner * dim + dim + 2 * dim + dim * mlp_dim + mlp_dim + mlp_dim * dim + dim


def _count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_parameter_counts_match_spec():
    block = TransformerBlock(416, heads=16, head_dim=64, mlp_dim=2048, dropout=0.1, attn_dropout=0.1)
    assert _count(block) == _block_params(416, 16, 64, 2048) == 3_412_416
    assert _count(MultiHeadAttention(384, heads=6, head_dim=64, rope=True)) == 590_208, "IDM attention, RoPE free"
    assert sum(b.numel() for b in MultiHeadAttention(8, heads=1, head_dim=8, rope=True).buffers()) > 0
    assert not MultiHeadAttention(8, heads=1, head_dim=8, rope=True).state_dict().keys() - {
        "qkv.weight",
        "out.weight",
        "out.bias",
    }, "RoPE tables stay out of checkpoints"


@pytest.mark.parametrize(("dim", "frames", "total"), [(416, 1, 20_556_864), (404, 3, 20_122_600)])
def test_predictor_trunk_parameter_counts(dim, frames, total):
    trunk = Transformer(dim, depth=6, heads=16, head_dim=64, mlp_dim=2048)
    pos = LearnedPositionEmbedding(frames * 196, dim, generator=torch.Generator().manual_seed(0))
    assert _count(trunk) + _count(pos) == total


def test_learned_position_embedding_adds_a_prefix_and_is_seeded():
    pos = LearnedPositionEmbedding(FRAMES * PATCHES, DIM, generator=torch.Generator().manual_seed(8))
    again = LearnedPositionEmbedding(FRAMES * PATCHES, DIM, generator=torch.Generator().manual_seed(8))
    assert torch.equal(pos.weight, again.weight)
    x = torch.zeros(2, 2 * PATCHES, DIM)
    torch.testing.assert_close(pos(x), pos.weight[:, : 2 * PATCHES].expand(2, -1, -1))
    with pytest.raises(ValueError, match="position embeddings"):
        pos(torch.zeros(1, FRAMES * PATCHES + 1, DIM))


def test_dropout_is_off_by_default_and_active_only_in_training():
    gen = torch.Generator().manual_seed(9)
    x = _tokens(gen, 2, 6, DIM)
    model = _seeded(lambda: Transformer(DIM, depth=1, heads=2, head_dim=16, mlp_dim=64)).train()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    noisy = _seeded(lambda: Transformer(DIM, depth=1, heads=2, head_dim=16, mlp_dim=64, dropout=0.5, attn_dropout=0.5))
    torch.testing.assert_close(noisy(x), noisy(x), rtol=0, atol=0)  # eval mode
    assert not torch.allclose(noisy.train()(x), noisy(x))
