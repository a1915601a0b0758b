"""The DINO-WM predictor ViT over frozen patch tokens (spec/latent_actions.md §6.1-§6.3).

Frame k enters as z_k = [v_k, tile_P(c_k)] (P tokens of width E + A); frames are flattened frame by frame, a
learnable position embedding is added, and a frame-causal transformer predicts: output frame k is frame k + 1.
"""

from __future__ import annotations

import torch
from torch import nn

from wmlab.errors import WmlabError
from wmlab.nn.transformer import LearnedPositionEmbedding, Transformer, frame_causal_mask


class Predictor(nn.Module):
    """Args:
    frames: history h (frames the predictor sees at most).
    tokens: P tokens per frame.
    dim: token width E + A.
    depth, heads, head_dim, mlp_dim, dropout: the ViT (paper: 6, 16, 64, 2048, 0.1).
    generator: seeds the position-embedding initialisation.
    """

    def __init__(
        self,
        frames: int,
        tokens: int,
        dim: int,
        depth: int = 6,
        heads: int = 16,
        head_dim: int = 64,
        mlp_dim: int = 2048,
        dropout: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.frames, self.tokens, self.dim = frames, tokens, dim
        self.position = LearnedPositionEmbedding(frames * tokens, dim, generator)
        # dropout also on attention probabilities, as the DINO-WM code does
        self.trunk = Transformer(dim, depth, heads, head_dim, mlp_dim, dropout=dropout, attn_dropout=dropout)
        self.register_buffer("mask", frame_causal_mask(frames, tokens), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, n, P, D) with n <= h frames -> predictions (B, n, P, D); output frame k predicts frame k + 1."""
        batch, n, p, d = z.shape
        if n > self.frames or p != self.tokens or d != self.dim:
            raise WmlabError(
                f"the predictor takes at most {self.frames} frames of {self.tokens} x {self.dim} "
                f"tokens, got {n} x {p} x {d}"
            )
        x = self.position(z.reshape(batch, n * p, d))
        # one frame attends fully: no mask, which lets attention skip the masking work (same result)
        out = self.trunk(x, self.mask[: n * p, : n * p] if n > 1 else None)
        return out.reshape(batch, n, p, d)
