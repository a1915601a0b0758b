"""DreamerV3 world model: encoder, RSSM, decoder, reward and continue heads, and its loss (spec/dali.md §3.3-§3.4).

Batches are dicts of tensors with shape (B, T, ...): ``state`` (float32, state modality) or ``image`` (uint8,
pixel modality), ``prev_action`` (a_{t-1}), ``reward`` (r_t, received on arriving at o_t), ``is_first``,
``is_terminal``. The ``context`` field may be present but this model never reads it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wmlab.dreamer.config import ModelConfig
from wmlab.dreamer.rssm import RSSM, State
from wmlab.nn.conv import ConvDecoder, ConvEncoder
from wmlab.nn.distributions import TwoHot, symlog, two_hot_bins
from wmlab.nn.layers import MLP, MLPHead, OutputLinear


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of S categoricals given (..., S, C) log-probabilities, summed over S."""
    return -(logits.exp() * logits).sum((-2, -1)).mean()


class VectorEncoder(nn.Module):
    """symlog(x) -> MLP. (..., D) -> (..., units)."""

    def __init__(self, in_dim: int, units: int, layers: int):
        super().__init__()
        self.mlp = MLP(in_dim, units, layers)
        self.out_dim = self.mlp.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(symlog(x))


class VectorDecoder(nn.Module):
    """features -> prediction of symlog(x). (..., F) -> (..., D); loss: squared error summed over D."""

    def __init__(self, in_dim: int, out_dim: int, units: int, layers: int):
        super().__init__()
        self.mlp = MLP(in_dim, units, layers)
        self.out = OutputLinear(self.mlp.out_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(features))

    @staticmethod
    def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction - symlog(target)).pow(2).sum(-1)


class WorldModel(nn.Module):
    """Args:
    modality: ``state`` (encode/decode the state vector) or ``pixels`` (encode/decode 64x64 images).
    obs_dim: state size (state modality).
    action_dim: action size (one-hot size for discrete actions).
    cfg: sizes and optimiser settings.
    image_size: image side (pixel modality).
    """

    def __init__(self, modality: str, obs_dim: int, action_dim: int, cfg: ModelConfig, image_size: int = 64):
        super().__init__()
        self.modality, self.cfg = modality, cfg
        if modality == "state":
            self.encoder = VectorEncoder(obs_dim, cfg.encoder_units, cfg.encoder_layers)
        else:
            self.encoder = ConvEncoder(cfg.cnn_depth, image_size)
        self.rssm = RSSM(self.encoder.out_dim, action_dim, cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.unimix)
        feat = self.rssm.feature_dim
        if modality == "state":
            self.decoder = VectorDecoder(feat, obs_dim, cfg.encoder_units, cfg.encoder_layers)
        else:
            self.decoder = ConvDecoder(feat, cfg.cnn_depth, image_size)
        self.reward_head = MLPHead(feat, 255, cfg.units, cfg.layers, zero_output=True)
        self.cont_head = MLPHead(feat, 1, cfg.units, cfg.layers)
        self.register_buffer("bins", two_hot_bins(), persistent=False)

    @property
    def obs_key(self) -> str:
        return "state" if self.modality == "state" else "image"

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation embedding e_t: (B, T, E)."""
        return self.encoder(batch[self.obs_key])

    def reward(self, features: torch.Tensor) -> TwoHot:
        return TwoHot(self.reward_head(features), self.bins)

    def cont_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.cont_head(features).squeeze(-1)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Reconstruction: symlog state (..., D) or image in [0, 1] units (..., S, S, 3)."""
        return self.decoder(features)

    def loss(
        self, batch: dict[str, torch.Tensor], state: State | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        """World-model loss, averaged over B x T.

        Returns (loss, posteriors (B, T, ...), metrics).
        """
        embed = self.encode(batch)
        post, prior = self.rssm.observe(embed, batch["prev_action"], batch["is_first"], state, generator=generator)
        features = self.rssm.features(post)
        prediction = self.decode(features)
        if self.modality == "state":
            recon = VectorDecoder.loss(prediction, batch["state"])
        else:
            recon = (prediction - batch["image"].float() / 255.0).pow(2).sum((-3, -2, -1))
        reward = -self.reward(features).log_prob(batch["reward"])
        cont_target = 1.0 - batch["is_terminal"].float()
        cont = F.binary_cross_entropy_with_logits(self.cont_logits(features), cont_target, reduction="none")
        kl, parts = self.rssm.kl_loss(post, prior, self.cfg.free_nats, self.cfg.dyn_scale, self.cfg.rep_scale)
        total = recon + reward + cont + kl
        metrics = {
            "wm/loss": total.mean(),
            "wm/recon": recon.mean(),
            "wm/reward_nll": reward.mean(),
            "wm/cont_nll": cont.mean(),
            "wm/kl_dyn": parts["kl_dyn"].mean(),
            "wm/kl_rep": parts["kl_rep"].mean(),
            "wm/prior_entropy": _entropy(prior["logits"]),
            "wm/post_entropy": _entropy(post["logits"]),
        }
        return total.mean(), post, {k: v.detach() for k, v in metrics.items()}


@torch.no_grad()
def openloop_images(wm: WorldModel, batch: dict[str, torch.Tensor], context_steps: int = 5) -> torch.Tensor:
    """Open-loop prediction video frames: observe ``context_steps`` frames, then imagine with the real actions.

    batch: pixel batch (B, T, ...). Returns uint8 (T, S, 3 S, 3) per sequence stacked as (B, T, S, 3 S, 3):
    truth | prediction | error, side by side.
    """
    embed = wm.encode(batch)
    post, _ = wm.rssm.observe(
        embed[:, :context_steps], batch["prev_action"][:, :context_steps], batch["is_first"][:, :context_steps]
    )
    state = {k: v[:, -1] for k, v in post.items()}
    features = [wm.rssm.features(post)]
    for t in range(context_steps, embed.shape[1]):
        state = wm.rssm.img_step(state, batch["prev_action"][:, t], sample=False)
        features.append(wm.rssm.features(state)[:, None])
    prediction = wm.decode(torch.cat(features, 1)).clamp(0, 1)
    truth = batch["image"].float() / 255.0
    error = ((prediction - truth).abs() * 2).clamp(0, 1)
    return (torch.cat([truth, prediction, error], -2) * 255).to(torch.uint8)
