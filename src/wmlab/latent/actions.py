"""What conditions the predictor (spec/latent_actions.md §6.4-§6.8): real actions through a linear encoder, or
latent actions inferred by an inverse-dynamics model from consecutive frames, optionally vector-quantised.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wmlab.nn.transformer import FeedForward, MultiHeadAttention, causal_mask
from wmlab.nn.vq import EMAVectorQuantizer, two_phase_alpha


class ActionEncoder(nn.Linear):
    """phi: the normalised macro action (..., fs * 2) -> conditioning (..., A), linear (352 parameters for 10 -> 32)."""


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i), w_i = 10000^(-2i/dim). Returns (length, dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe


class SpatioTemporalBlock(nn.Module):
    """Spatial attention per frame (over its P + 1 slots), causal temporal attention per slot with RoPE, FFN."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.spatial = MultiHeadAttention(dim, heads, head_dim, dropout)
        self.temporal = MultiHeadAttention(dim, heads, head_dim, dropout, rope=True)
        self.ffn = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, S, D) -> (B, T, S, D)."""
        x = x + self.spatial(self.norm1(x))
        t = x.shape[1]
        temporal = self.temporal(self.norm2(x).transpose(1, 2), causal_mask(t, x.device)).transpose(1, 2)
        x = x + temporal
        return x + self.ffn(self.norm3(x))


class InverseDynamics(nn.Module):
    """The IDM ("LAM"): a learnable action prompt prepended to every frame's tokens, a spatio-temporal transformer
    with causal temporal attention, and the prompt slot's output per frame (spec §6.5).

    Args:
        token_dim: E of the cached tokens; tokens: P.
        dim, depth, heads, head_dim, mlp_dim: paper 384, 12, 6, 64, 1536.
        generator: seeds the prompt initialisation U(-1, 1).
    """

    def __init__(
        self,
        token_dim: int,
        tokens: int,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        head_dim: int = 64,
        mlp_dim: int = 1536,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        prompt = torch.rand(1, 1, 1, token_dim, generator=generator) * 2 - 1
        self.prompt = nn.Parameter(prompt)
        self.project_in = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, dim), nn.LayerNorm(dim))
        self.register_buffer("positions", sinusoidal_positions(tokens + 1, dim), persistent=False)
        self.blocks = nn.ModuleList(SpatioTemporalBlock(dim, heads, head_dim, mlp_dim, dropout) for _ in range(depth))
        self.project_out = nn.Linear(dim, dim)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v (B, T, P, E) -> prompt-slot outputs (B, T, dim); output t has seen frames <= t only."""
        batch, length = v.shape[:2]
        x = torch.cat([self.prompt.expand(batch, length, 1, -1), v], 2)
        x = self.project_in(x) + self.positions
        for block in self.blocks:
            x = block(x)
        return self.project_out(x[:, :, 0])


class LatentActionHead(nn.Module):
    """IDM -> W_down -> (+1 shift) -> optional EMA VQ: the latent action e_t of the transition o_t -> o_{t+1}.

    Args:
        idm: the inverse-dynamics model; latent_dim: A (32).
        quantizer: an :class:`EMAVectorQuantizer` for ``la-vq`` (None for ``la``).
        warmup, mix: the two-phase schedule of §6.8 (both 0: plain VQ from step 0).
    """

    def __init__(
        self,
        idm: InverseDynamics,
        idm_dim: int,
        latent_dim: int,
        quantizer: EMAVectorQuantizer | None = None,
        warmup: int = 0,
        mix: int = 0,
    ):
        super().__init__()
        self.idm, self.quantizer, self.warmup, self.mix = idm, quantizer, warmup, mix
        self.down = nn.Linear(idm_dim, latent_dim)
        # the global step the model was trained to: evaluation uses the schedule's alpha at that step
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))

    def forward(self, v: torch.Tensor, step: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """v (B, T, P, E) -> latent actions (B, T, A) and extras (commitment loss, indices, alpha).

        ``step`` is the global training step of the two-phase schedule; None (evaluation, planning) uses the step
        the model was trained to.

        e_t = W_down(IDM(v)_{t+1}) for t < T - 1 and the last entry duplicated; VQ sees only the T - 1 real entries.
        """
        raw = self.down(self.idm(v))  # (B, T, A): entry t encodes frames <= t
        real = raw[:, 1:]
        extras: dict[str, torch.Tensor] = {"commitment": real.new_zeros(())}
        if step is None:
            step = int(self.trained_steps)
        elif self.training:
            self.trained_steps.fill_(step)
        if self.quantizer is not None:
            alpha = two_phase_alpha(step, self.warmup, self.mix)
            with torch.autocast(real.device.type, enabled=False):  # nearest codes and the EMA stay float32
                out = self.quantizer(real.float(), alpha)
            real = out.quantized
            extras.update(commitment=out.loss, indices=out.indices, counts=out.counts, alpha=real.new_tensor(alpha))
        return torch.cat([real, real[:, -1:]], 1), extras
