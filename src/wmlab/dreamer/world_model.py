"""DreamerV3 world model: encoder, RSSM, decoder, reward and continue heads, and its loss (spec/dali.md §3.3-§3.4).

Batches are dicts of tensors with shape (B, T, ...): ``state`` (float32, state modality) or ``image`` (uint8,
pixel modality), ``prev_action`` (a_{t-1}), ``reward`` (r_t, received on arriving at o_t), ``is_first``,
``is_terminal``, and ``context`` (the normalized GT context, read only by the ``crssm-*`` variants).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wmlab.dreamer.config import ContextConfig, ModelConfig
from wmlab.dreamer.context import ContextEncoder, CrossModal, TransitionModel, alignment_loss
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


def shift_context(kappa: torch.Tensor, is_first: torch.Tensor) -> torch.Tensor:
    """Transition context kappa^tr: kappa shifted right by one step (repeating step 0), kappa itself at episode
    starts (spec §4.3), so the prior into step t never sees x_t. (B, T, c) -> (B, T, c)."""
    shifted = torch.cat([kappa[:, :1], kappa[:, :-1]], 1)
    return torch.where(is_first[..., None], kappa, shifted)


class WorldModel(nn.Module):
    """Args:
    modality: ``state`` (encode/decode the state vector) or ``pixels`` (encode/decode 64x64 images).
    obs_dim: state size (state modality).
    action_dim: action size (one-hot size for discrete actions).
    cfg: sizes and optimiser settings.
    image_size: image side (pixel modality).
    variant: ``dreamer``, ``crssm-s``, ``crssm-d``, ``dali-s`` or ``dali-d`` (where the context enters: spec §2.2).
    context_cfg: DALI context inference settings.
    gt_dim: size of the ground-truth context vector.
    """

    def __init__(
        self,
        modality: str,
        obs_dim: int,
        action_dim: int,
        cfg: ModelConfig,
        image_size: int = 64,
        variant: str = "dreamer",
        context_cfg: ContextConfig | None = None,
        gt_dim: int = 2,
    ):
        super().__init__()
        self.modality, self.cfg, self.variant = modality, cfg, variant
        self.context_cfg = context_cfg or ContextConfig()
        self.uses_gt = variant.startswith("crssm")
        self.infers = variant.startswith("dali")
        self.deep = variant in ("crssm-d", "dali-d")  # context in heads, actor and critic
        self.context_dim = gt_dim if self.uses_gt else self.context_cfg.dim if self.infers else 0
        gt_in = gt_dim if variant == "crssm-s" else 0
        units, layers = cfg.encoder_units, cfg.encoder_layers
        if modality == "state":
            self.encoder = VectorEncoder(obs_dim + gt_in, units, layers)
            embed_dim = self.encoder.out_dim
        else:
            self.encoder = ConvEncoder(cfg.cnn_depth, image_size)
            self.gt_encoder = VectorEncoder(gt_dim, units, layers) if gt_in else None
            embed_dim = self.encoder.out_dim + (self.gt_encoder.out_dim if gt_in else 0)
        transition_dim = self.context_dim if variant in ("crssm-d", "dali-s", "dali-d") else 0
        posterior_dim = self.context_dim if variant == "dali-s" else 0
        self.rssm = RSSM(
            embed_dim,
            action_dim,
            cfg.deter,
            cfg.hidden,
            cfg.stoch,
            cfg.classes,
            cfg.unimix,
            transition_dim,
            posterior_dim,
        )
        feat = self.rssm.feature_dim
        self.head_dim = feat + (self.context_dim if self.deep else 0)
        if modality == "state":
            self.decoder = VectorDecoder(self.head_dim, obs_dim + gt_in, units, layers)
        else:
            self.decoder = ConvDecoder(self.head_dim, cfg.cnn_depth, image_size)
            self.gt_decoder = VectorDecoder(self.head_dim, gt_dim, units, layers) if gt_in else None
        self.reward_head = MLPHead(self.head_dim, 255, cfg.units, cfg.layers, zero_output=True)
        self.cont_head = MLPHead(self.head_dim, 1, cfg.units, cfg.layers)
        self.register_buffer("bins", two_hot_bins(), persistent=False)
        if self.infers:
            c = self.context_cfg
            x_dim = obs_dim if modality == "state" else self.encoder.out_dim
            self.token_dim = x_dim + action_dim
            self.context_encoder = ContextEncoder(c.encoder, self.token_dim, c.window, c.width, c.heads, c.dim)
            if c.repr_loss in ("forward", "both"):
                self.forward_model = TransitionModel(x_dim + action_dim, c.dim, x_dim, c.fw_units, c.fw_layers)
            if c.repr_loss in ("inverse", "both"):
                self.inverse_model = TransitionModel(2 * x_dim, c.dim, action_dim, c.fw_units, c.fw_layers)
            if c.crossmodal:
                self.crossmodal = CrossModal(c.dim, feat)

    @property
    def obs_key(self) -> str:
        return "state" if self.modality == "state" else "image"

    @property
    def transition_uses_context(self) -> bool:
        return self.variant in ("crssm-d", "dali-s", "dali-d")

    # -- pieces -----------------------------------------------------------------------------------------------------
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation embedding e_t: (..., E). Reads the GT ``context`` only for ``crssm-s``."""
        if self.modality == "state":
            x = batch["state"]
            if self.variant == "crssm-s":
                x = torch.cat([x, batch["context"]], -1)
            return self.encoder(x)
        embed = self.encoder(batch["image"])
        if self.variant == "crssm-s":
            embed = torch.cat([embed, self.gt_encoder(batch["context"])], -1)
        return embed

    def token_features(self, batch: dict[str, torch.Tensor], embed: torch.Tensor) -> torch.Tensor:
        """x_k of the DALI tokens: the raw state, or the CNN embedding (never a GT-context embedding). (..., D_x)."""
        return batch["state"] if self.modality == "state" else embed

    def head_features(self, state: State, context: torch.Tensor | None) -> torch.Tensor:
        """Input of the heads, actor and critic: [h, z] (+ context for the deep variants). (..., head_dim)."""
        features = self.rssm.features(state)
        return torch.cat([features, context], -1) if self.deep else features

    def reward(self, features: torch.Tensor) -> TwoHot:
        return TwoHot(self.reward_head(features), self.bins)

    def cont_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.cont_head(features).squeeze(-1)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Reconstruction: symlog state (..., D) or image in [0, 1] units (..., S, S, 3)."""
        return self.decoder(features)

    def infer_context(self, batch: dict[str, torch.Tensor], embed: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Per-step context kappa (B, T, c): GT for ``crssm-*``, inferred from causal windows for ``dali-*``."""
        if self.uses_gt:
            return {"context": batch["context"]}
        if not self.infers:
            return None
        x = self.token_features(batch, embed)
        tokens = torch.cat([x, batch["prev_action"]], -1)
        context, idx, mask = self.context_encoder.all_windows(tokens, batch["is_first"])
        return {"context": context, "x": x, "idx": idx, "mask": mask}

    # -- loss -------------------------------------------------------------------------------------------------------
    def loss(
        self, batch: dict[str, torch.Tensor], state: State | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, State, torch.Tensor | None, dict]:
        """World-model loss (+ DALI terms), averaged over B x T.

        Returns (loss, posteriors (B, T, ...), per-step context kappa (B, T, c) detached or None, metrics).
        """
        embed = self.encode(batch)
        inferred = self.infer_context(batch, embed)
        kappa = None if inferred is None else inferred["context"]
        kappa_wm = kappa.detach() if kappa is not None and self.infers and not self.context_cfg.wm_grad else kappa
        tctx = shift_context(kappa_wm, batch["is_first"]) if self.transition_uses_context else None
        pctx = kappa_wm if self.variant == "dali-s" else None
        post, prior = self.rssm.observe(embed, batch["prev_action"], batch["is_first"], state, tctx, pctx, generator)
        features = self.head_features(post, kappa_wm)
        prediction = self.decode(features)
        if self.modality == "state":
            target = batch["state"] if self.variant != "crssm-s" else torch.cat([batch["state"], batch["context"]], -1)
            recon = VectorDecoder.loss(prediction, target)
        else:
            recon = (prediction - batch["image"].float() / 255.0).pow(2).sum((-3, -2, -1))
            if self.variant == "crssm-s":
                recon = recon + VectorDecoder.loss(self.gt_decoder(features), batch["context"])
        reward = -self.reward(features).log_prob(batch["reward"])
        cont_target = 1.0 - batch["is_terminal"].float()
        cont = F.binary_cross_entropy_with_logits(self.cont_logits(features), cont_target, reduction="none")
        kl, parts = self.rssm.kl_loss(post, prior, self.cfg.free_nats, self.cfg.dyn_scale, self.cfg.rep_scale)
        per_step = recon + reward + cont + kl
        total = per_step.mean()
        metrics = {
            "wm/loss": per_step.mean(),
            "wm/recon": recon.mean(),
            "wm/reward_nll": reward.mean(),
            "wm/cont_nll": cont.mean(),
            "wm/kl_dyn": parts["kl_dyn"].mean(),
            "wm/kl_rep": parts["kl_rep"].mean(),
            "wm/prior_entropy": _entropy(prior["logits"]),
            "wm/post_entropy": _entropy(post["logits"]),
        }
        if self.infers:
            dali, dali_metrics = self._dali_loss(batch, inferred, post, embed, generator)
            total = total + self.context_cfg.loss_scale * dali
            metrics.update(dali_metrics)
        return total, post, None if kappa is None else kappa.detach(), {k: v.detach() for k, v in metrics.items()}

    def _dali_loss(self, batch, inferred, post, embed, generator) -> tuple[torch.Tensor, dict]:
        c = self.context_cfg
        x = inferred["x"].detach() if c.embed_stopgrad and self.modality == "pixels" else inferred["x"]
        prev = batch["prev_action"]
        taken = torch.cat([prev[:, 1:], torch.zeros_like(prev[:, :1])], 1)  # a_k = action part of u_{k+1}
        limit = c.fw_max_transitions_pixels if self.modality == "pixels" else c.fw_max_transitions
        args = (x, taken, inferred["context"], inferred["idx"], inferred["mask"], limit, generator)
        total, metrics = 0.0, {}
        if c.repr_loss in ("forward", "both"):
            metrics["dali/forward"] = alignment_loss(self.forward_model, "forward", *args)
            total = total + metrics["dali/forward"]
        if c.repr_loss in ("inverse", "both"):
            metrics["dali/inverse"] = alignment_loss(self.inverse_model, "inverse", *args)
            total = total + metrics["dali/inverse"]
        if c.crossmodal:
            pctx = inferred["context"].detach() if self.variant == "dali-s" else None
            metrics["dali/crossmodal"] = self.crossmodal.loss(
                self.rssm, post, embed, batch, inferred["context"], pctx, generator
            )
            total = total + c.crossmodal_scale * metrics["dali/crossmodal"]
        metrics["dali/context_std"] = inferred["context"].std(dim=(0, 1)).mean()
        return total, metrics


@torch.no_grad()
def openloop_images(wm: WorldModel, batch: dict[str, torch.Tensor], context_steps: int = 5) -> torch.Tensor:
    """Open-loop prediction video frames: observe ``context_steps`` frames, then imagine with the real actions.

    batch: pixel batch (B, T, ...). Returns uint8 (T, S, 3 S, 3) per sequence stacked as (B, T, S, 3 S, 3):
    truth | prediction | error, side by side.
    """
    observed = {k: v[:, :context_steps] for k, v in batch.items()}
    embed = wm.encode(observed)
    inferred = wm.infer_context(observed, embed)
    kappa = None if inferred is None else inferred["context"]
    tctx = shift_context(kappa, observed["is_first"]) if wm.transition_uses_context else None
    pctx = kappa if wm.variant == "dali-s" else None
    post, _ = wm.rssm.observe(embed, observed["prev_action"], observed["is_first"], None, tctx, pctx)
    held = None if kappa is None else kappa[:, -1]  # the context stays fixed while imagining
    state = {k: v[:, -1] for k, v in post.items()}
    features = [wm.head_features(post, kappa)]
    for t in range(context_steps, batch["prev_action"].shape[1]):
        if "context" in batch and wm.uses_gt:
            held = batch["context"][:, t]
        state = wm.rssm.img_step(
            state, batch["prev_action"][:, t], held if wm.transition_uses_context else None, sample=False
        )
        features.append(wm.head_features(state, held)[:, None])
    prediction = wm.decode(torch.cat(features, 1)).clamp(0, 1)
    truth = batch["image"].float() / 255.0
    error = ((prediction - truth).abs() * 2).clamp(0, 1)
    return (torch.cat([truth, prediction, error], -2) * 255).to(torch.uint8)
