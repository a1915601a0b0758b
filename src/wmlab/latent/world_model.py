"""The latent world model: predictor + conditioning, its teacher-forced loss and open-loop rollout (spec §6.9, §6.11).

Variants: ``action`` (real macro actions through phi), ``la`` (latent actions from the IDM), ``la-vq`` (the same,
vector-quantised). Tokens are frozen-encoder features (B, T, P, E); only the first E output channels (the visual
part) enter the loss and the planning objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wmlab.errors import unknown_name_error
from wmlab.latent.actions import ActionEncoder, InverseDynamics, LatentActionHead
from wmlab.latent.predictor import Predictor
from wmlab.nn.vq import EMAVectorQuantizer

VARIANTS = ("action", "la", "la-vq")


@dataclass
class PredictorConfig:
    depth: int = 6
    heads: int = 16
    head_dim: int = 64
    mlp_dim: int = 2048
    dropout: float = 0.1


@dataclass
class IDMConfig:
    dim: int = 384
    depth: int = 12
    heads: int = 6
    head_dim: int = 64
    mlp_dim: int = 1536
    dropout: float = 0.0


@dataclass
class VQConfig:
    num_codes: int = 16  #: K (the fork's final configuration: 32)
    commitment: float = 0.1  #: beta (final: 0.05)
    decay: float = 0.95  #: EMA gamma (final: 0.99)
    rule: str = "corrected"  #: corrected | reference (the fork's EMA without bias correction)
    warmup: int = 2000  #: two-phase schedule: steps without quantisation
    mix: int = 1000  #: steps over which the quantised input is blended in


@dataclass
class LatentModelConfig:
    variant: str = "la-vq"  #: action | la | la-vq
    history: int = 1  #: h frames seen by the predictor
    frameskip: int = 5  #: raw steps per frame; the macro action has frameskip * 2 entries
    action_dim: int = 32  #: A, width of the conditioning tiled onto every token
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    idm: IDMConfig = field(default_factory=IDMConfig)
    vq: VQConfig = field(default_factory=VQConfig)


class LatentWorldModel(nn.Module):
    """Args:
    cfg: model configuration.
    tokens, token_dim: P and E of the feature cache (after pooling).
    seed: initialisation seed (position embedding, IDM prompt, codebook).
    """

    def __init__(self, cfg: LatentModelConfig, tokens: int, token_dim: int, seed: int = 0):
        super().__init__()
        if cfg.variant not in VARIANTS:
            raise unknown_name_error("latent world-model variant", cfg.variant, VARIANTS)
        self.cfg, self.tokens, self.token_dim = cfg, tokens, token_dim
        generator = torch.Generator().manual_seed(seed)
        p = cfg.predictor
        self.predictor = Predictor(
            cfg.history,
            tokens,
            token_dim + cfg.action_dim,
            p.depth,
            p.heads,
            p.head_dim,
            p.mlp_dim,
            p.dropout,
            generator,
        )
        if cfg.variant == "action":
            self.action_encoder = ActionEncoder(2 * cfg.frameskip, cfg.action_dim)
        else:
            i = cfg.idm
            idm = InverseDynamics(
                token_dim, tokens, i.dim, i.depth, i.heads, i.head_dim, i.mlp_dim, i.dropout, generator
            )
            quantizer = None
            if cfg.variant == "la-vq":
                v = cfg.vq
                quantizer = EMAVectorQuantizer(
                    v.num_codes, cfg.action_dim, decay=v.decay, commitment=v.commitment, rule=v.rule, seed=seed
                )
            warmup, mix = (cfg.vq.warmup, cfg.vq.mix) if quantizer is not None else (0, 0)
            self.latent_actions = LatentActionHead(idm, cfg.idm.dim, cfg.action_dim, quantizer, warmup, mix)

    def conditioning(
        self, tokens: torch.Tensor, actions: torch.Tensor, step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-frame conditioning c (B, T, A) from tokens (B, T, P, E) or macro actions (B, T, fs * 2)."""
        if self.cfg.variant == "action":
            return self.action_encoder(actions), {"commitment": actions.new_zeros(())}
        return self.latent_actions(tokens, step)

    def predict(self, visual: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """One predictor pass. visual (B, n, P, E), conditioning (B, n, A) -> next visual tokens (B, n, P, E)."""
        tiled = conditioning[:, :, None, :].expand(-1, -1, visual.shape[2], -1)
        return self.predictor(torch.cat([visual, tiled], -1))[..., : self.token_dim]

    def loss(
        self, tokens: torch.Tensor, actions: torch.Tensor, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher-forced loss of a window. tokens (B, h + 1, P, E), actions (B, h + 1, fs * 2).

        L = MSE over the visual channels of the h predicted frames + the VQ commitment term.
        """
        h = self.cfg.history
        conditioning, extras = self.conditioning(tokens, actions, step)
        predicted = self.predict(tokens[:, :h], conditioning[:, :h])
        prediction_loss = F.mse_loss(predicted.float(), tokens[:, 1 : h + 1].detach().float())  # fp32 under bf16
        total = prediction_loss + extras["commitment"]
        metrics = {
            "latent_pred_loss": prediction_loss.detach(),
            "vq_commit_loss": extras["commitment"].detach(),
            "total_loss": total.detach(),
        }
        if "alpha" in extras:
            metrics["vq_alpha"] = extras["alpha"]
            metrics["counts"] = extras["counts"]
        return total, metrics

    def rollout(self, observed: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """Open-loop rollout (spec §6.11). observed (B, h0, P, E) with h0 <= h, conditioning (B, H, A).

        Returns visual tokens (B, H + 1, P, E): frames 0..H, frame H to be compared with the goal.
        """
        h, h0 = self.cfg.history, observed.shape[1]
        horizon = conditioning.shape[1]
        conditioning = torch.cat([conditioning, conditioning[:, -1:]], 1)  # padding copy, never used for a loss
        frames = list(observed.unbind(1))
        for k in range(h0 - 1, horizon):
            start = max(0, k + 1 - h)
            window = torch.stack(frames[start : k + 1], 1)
            frames.append(self.predict(window, conditioning[:, start : k + 1])[:, -1])
        return torch.stack(frames[: horizon + 1], 1)
