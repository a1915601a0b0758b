"""Transformer building blocks: attention masks, temporal RoPE, pre-LN blocks (spec/latent_actions.md §6.2-§6.5).

Generic pieces from which ``wmlab.latent`` assembles DINO-WM's predictor ViT (§6.2, frame-causal mask §6.3) and the
inverse-dynamics model's spatio-temporal blocks (§6.5, causal temporal attention with RoPE).

Conventions:

* Masks are boolean with ``True`` = "may attend", the convention of ``F.scaled_dot_product_attention``;
  :func:`additive_mask` turns one into the 0 / -inf form of ``softmax(QK^T/sqrt(d) + M)``.
* Tokens of several frames are laid out frame-major: token ``k * P + p`` is patch ``p`` of frame ``k``, i.e.
  ``(B, T, P, D).flatten(1, 2)``.
* Attention modules take ``(..., L, D)``: every leading axis is batch, so attending along another axis (the IDM's
  temporal attention) is a transpose by the caller.
* Initialisation and LayerNorm eps (1e-5) are PyTorch's defaults, as in the DINO-WM and fork code; the DreamerV3
  conventions of ``wmlab.nn.layers`` do not apply here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROPE_BASE = 10000.0


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (L, L) mask, True where key j <= query i: each position attends to itself and the past."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def frame_causal_mask(frames: int, tokens_per_frame: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Block lower-triangular boolean mask of §6.3, shape (T·P, T·P) for T = ``frames``, P = ``tokens_per_frame``.

    ``mask[i, j]`` is True iff frame(j) <= frame(i) with frame(i) = i // P: a token sees every token of its own frame
    and of earlier frames, none of later ones. With one frame it is all True (full attention). The mask for n < T
    frames is the top-left (n·P, n·P) block of this one, so a module can store the largest and slice it.
    """
    frame_of = torch.arange(frames * tokens_per_frame, device=device) // tokens_per_frame
    return frame_of[None, :] <= frame_of[:, None]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boolean mask (True = attend) -> additive mask of the same shape: 0 where allowed, -inf where hidden."""
    zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return zeros.masked_fill(~mask, float("-inf"))


def rope_frequencies(head_dim: int, base: float = ROPE_BASE) -> torch.Tensor:
    """RoPE angular frequencies ω_i = base^(-2i / head_dim), i = 0 … head_dim/2 - 1. Shape (head_dim / 2,)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return (base**-exponents).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each adjacent pair (x_2i, x_2i+1) of ``x`` by the angle whose cosine and sine are given.

    Interleaved-pair convention of §6.5 (not split halves):
    (x_2i, x_2i+1) <- (x_2i cos - x_2i+1 sin, x_2i sin + x_2i+1 cos).

    Args:
        x: (..., L, Dh) queries or keys, one row per position.
        cos, sin: (L, Dh/2) for the positions of the L rows, broadcast over the leading axes.

    Returns:
        (..., L, Dh) in the dtype of ``x``; the rotation itself runs in float32 so that low-precision inputs keep
        exact relative-position behaviour.
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over one axis (time for the IDM), with a cached cos/sin table.

    ``forward(x, offset)`` rotates row ``l`` of ``x`` (..., L, Dh) by position ``offset + l``. The cache holds float32
    cos/sin for positions [0, cache_len) in non-persistent buffers (they follow ``.to(device)`` and never enter
    checkpoints or parameter counts) and grows on demand.
    """

    def __init__(self, head_dim: int, base: float = ROPE_BASE, cache_len: int = 64):
        super().__init__()
        self.head_dim = head_dim
        self.register_buffer("inv_freq", rope_frequencies(head_dim, base), persistent=False)
        self.register_buffer("cos_cached", torch.empty(0, head_dim // 2), persistent=False)
        self.register_buffer("sin_cached", torch.empty(0, head_dim // 2), persistent=False)
        self._build_cache(cache_len)

    def _build_cache(self, length: int) -> None:
        positions = torch.arange(length, dtype=torch.float32, device=self.inv_freq.device)
        angles = positions[:, None] * self.inv_freq[None, :]
        self.cos_cached, self.sin_cached = angles.cos(), angles.sin()

    def cos_sin(self, length: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin, each (L, Dh/2), for positions offset … offset + L - 1 (offset >= 0)."""
        if offset < 0:
            raise ValueError(f"RoPE positions start at 0, got offset {offset}")
        end = offset + length
        if end > self.cos_cached.shape[0]:
            self._build_cache(max(end, 2 * self.cos_cached.shape[0]))
        return self.cos_cached[offset:end], self.sin_cached[offset:end]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """(..., L, Dh) -> (..., L, Dh), row l rotated by position offset + l."""
        cos, sin = self.cos_sin(x.shape[-2], offset)
        return apply_rope(x, cos, sin)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``. (..., L, D) -> (..., L, D).

    q, k, v = one Linear(D -> 3·heads·head_dim) (bias off by default, as in DINO-WM and the fork), split into heads;
    optional RoPE on q and k; softmax(q kᵀ / sqrt(head_dim) + M) v; output Linear(heads·head_dim -> D) with bias,
    then dropout. Parameters: 3·D·inner (+ 3·inner with qkv_bias) + inner·D + D, inner = heads·head_dim.

    Args:
        dim: token width D.
        heads, head_dim: number and width of heads (the predictor: 16 x 64; the IDM: 6 x 64).
        dropout: dropout after the output projection (0.1 in the `paper` predictor).
        attn_dropout: dropout on the attention probabilities (the DINO-WM code applies ``dropout`` here too).
        qkv_bias: bias on the q/k/v projection.
        rope: rotate q and k by position along L (the IDM's temporal attention).
        rope_base: RoPE frequency base.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 16,
        head_dim: int = 64,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        qkv_bias: bool = False,
        rope: bool = False,
        rope_base: float = ROPE_BASE,
    ):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.out = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = attn_dropout
        self.rope = RotaryEmbedding(head_dim, rope_base) if rope else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, rope_offset: int = 0) -> torch.Tensor:
        """Attend over the L axis of ``x`` (..., L, D).

        Args:
            x: (..., L, D); all leading axes are batch.
            mask: None (full attention), or a boolean (True = attend) or additive float mask broadcastable to
                (N, heads, L, L) with N the product of the leading axes; usually (L, L).
            rope_offset: position of the first row when RoPE is on (e.g. the index of the first frame).

        Returns:
            (..., L, D).
        """
        lead, length = x.shape[:-2], x.shape[-2]
        # SDPA's fused kernels want exactly (N, heads, L, head_dim).
        qkv = self.qkv(x.reshape(-1, length, x.shape[-1]))
        q, k, v = qkv.unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        if self.rope is not None:
            q, k = self.rope(q, rope_offset), self.rope(k, rope_offset)
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(q.dtype)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).flatten(-2)  # (N, L, heads·head_dim)
        return self.dropout(self.out(attended)).reshape(*lead, length, -1)


class FeedForward(nn.Sequential):
    """Linear(D -> mlp_dim) -> GELU -> Dropout -> Linear(mlp_dim -> D) -> Dropout. (..., D) -> (..., D).

    Exact (erf) GELU, as ``nn.GELU()`` in the reference code. Parameters: 2·D·mlp_dim + mlp_dim + D.
    """

    def __init__(self, dim: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )


class TransformerBlock(nn.Module):
    """Pre-LN transformer block of DINO-WM's predictor ViT (§6.2). (..., L, D) -> (..., L, D).

        x <- x + Attn(LN(x), mask)
        x <- x + FeedForward(LN(x))

    With the `paper` predictor sizes (D 416, 16 heads x 64, MLP 2048) it has 3,412,416 parameters (§6.13).
    Arguments are those of :class:`MultiHeadAttention` and :class:`FeedForward`; ``norm_eps`` is the LayerNorm eps.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 16,
        head_dim: int = 64,
        mlp_dim: int = 2048,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        qkv_bias: bool = False,
        rope: bool = False,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadAttention(dim, heads, head_dim, dropout, attn_dropout, qkv_bias, rope)
        self.mlp_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, rope_offset: int = 0) -> torch.Tensor:
        """(..., L, D) -> (..., L, D); ``mask`` and ``rope_offset`` as in :meth:`MultiHeadAttention.forward`."""
        x = x + self.attn(self.attn_norm(x), mask, rope_offset)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """``depth`` :class:`TransformerBlock` s sharing one mask, then a final LayerNorm. (..., L, D) -> (..., L, D).

    DINO-WM's predictor trunk is ``Transformer(416, depth=6, heads=16, head_dim=64, mlp_dim=2048, dropout=0.1,
    attn_dropout=0.1)`` fed with ``frame_causal_mask``; its position embedding lives outside
    (:class:`LearnedPositionEmbedding`) because the tokens need it only once, before the first block.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int = 16,
        head_dim: int = 64,
        mlp_dim: int = 2048,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        qkv_bias: bool = False,
        rope: bool = False,
        norm_eps: float = 1e-5,
        final_norm: bool = True,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, head_dim, mlp_dim, dropout, attn_dropout, qkv_bias, rope, norm_eps)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if final_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, rope_offset: int = 0) -> torch.Tensor:
        """(..., L, D) -> (..., L, D); ``mask`` and ``rope_offset`` as in :meth:`MultiHeadAttention.forward`."""
        for block in self.blocks:
            x = block(x, mask, rope_offset)
        return self.norm(x)


class LearnedPositionEmbedding(nn.Module):
    """Learnable per-token embedding (1, max_tokens, D), initialised from N(0, 1) and added to the input (§6.2).

    For the predictor, max_tokens = h·P (one entry per (frame, patch) token, frame-major). An input with L <= max_tokens
    tokens gets the first L entries: fewer than h frames use the first n·P, as in DINO-WM's rollout start.

    Args:
        max_tokens: number of positions.
        dim: token width D.
        generator: optional generator for the N(0, 1) initialisation.
    """

    def __init__(self, max_tokens: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, max_tokens, dim, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D) with ``weight[:, :L]`` added."""
        length = x.shape[-2]
        if length > self.weight.shape[1]:
            raise ValueError(f"{length} tokens but only {self.weight.shape[1]} position embeddings")
        return x + self.weight[:, :length]
