"""Recurrent state-space model of DreamerV3 v1 (spec/dali.md §3.2).

A state is a dict of tensors with leading batch shape (...):
    deter   (..., D)      GRU state h
    stoch   (..., S, C)   one-hot categorical latents z (straight-through)
    logits  (..., S, C)   unimixed log-probabilities of the distribution z was drawn from

Optional context inputs (used by the contextual variants): ``transition_context`` enters the transition input
[z, a, kappa]; ``posterior_context`` enters the posterior input [h, e, c].
"""

from __future__ import annotations

import torch
from torch import nn

from wmlab.nn.distributions import OneHotDist, categorical_kl
from wmlab.nn.layers import DenseBlock, OutputLinear, init_hidden_, layer_norm

State = dict[str, torch.Tensor]


class RSSM(nn.Module):
    """Args:
    embed_dim: size of the observation embedding e.
    action_dim: size of the (one-hot or continuous) action.
    deter, hidden, stoch, classes: sizes (paper: 512, 512, 32, 32).
    unimix: uniform mixture on prior and posterior (0.01).
    transition_context_dim / posterior_context_dim: extra inputs of the transition / posterior (0 = none).
    """

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        deter: int = 512,
        hidden: int = 512,
        stoch: int = 32,
        classes: int = 32,
        unimix: float = 0.01,
        transition_context_dim: int = 0,
        posterior_context_dim: int = 0,
    ):
        super().__init__()
        self.deter_dim, self.stoch_dim, self.classes, self.unimix = deter, stoch, classes, unimix
        self.action_dim = action_dim
        self.init_deter = nn.Parameter(torch.zeros(deter))  # h_0 = tanh(w), zero-initialised
        self.img_in = DenseBlock(stoch * classes + action_dim + transition_context_dim, hidden)
        self.gru = nn.Linear(deter + hidden, 3 * deter, bias=False)
        init_hidden_(self.gru.weight)
        self.gru_norm = layer_norm(3 * deter)
        self.img_out = DenseBlock(deter, hidden)
        self.prior_logits = OutputLinear(hidden, stoch * classes)
        self.obs_out = DenseBlock(deter + embed_dim + posterior_context_dim, hidden)
        self.post_logits = OutputLinear(hidden, stoch * classes)

    @property
    def feature_dim(self) -> int:
        return self.deter_dim + self.stoch_dim * self.classes

    def features(self, state: State) -> torch.Tensor:
        """[h, flatten(z)]: (..., D + S C)."""
        return torch.cat([state["deter"], state["stoch"].flatten(-2)], -1)

    def _dist(self, logits: torch.Tensor) -> OneHotDist:
        return OneHotDist(logits.unflatten(-1, (self.stoch_dim, self.classes)), self.unimix)

    def initial(self, batch: int) -> State:
        """Learned initial state: h_0 = tanh(w), z_0 = mode of the prior at h_0. Shapes (batch, ...)."""
        deter = torch.tanh(self.init_deter).expand(batch, -1)
        dist = self._dist(self.prior_logits(self.img_out(deter)))
        return {"deter": deter, "stoch": dist.mode(), "logits": dist.logits}

    def transition(self, state: State, action: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The deterministic GRU step: (h_{t-1}, z_{t-1}, a_{t-1}[, kappa]) -> h_t (..., D)."""
        action = action * (1.0 / action.abs().clamp(min=1.0)).detach()  # clip actions inside the RSSM
        inputs = [state["stoch"].flatten(-2), action] + ([context] if context is not None else [])
        u = self.img_in(torch.cat(inputs, -1))
        reset, cand, update = self.gru_norm(self.gru(torch.cat([state["deter"], u], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1 - update) * state["deter"]

    def img_step(
        self,
        state: State,
        action: torch.Tensor,
        context: torch.Tensor | None = None,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> State:
        """Prior step: (h_{t-1}, z_{t-1}, a_{t-1}[, kappa]) -> (h_t, z_t ~ prior). action (..., A)."""
        deter = self.transition(state, action, context)
        dist = self._dist(self.prior_logits(self.img_out(deter)))
        stoch = dist.sample(generator) if sample else dist.mode()
        return {"deter": deter, "stoch": stoch, "logits": dist.logits}

    def obs_step(
        self,
        prior: State,
        embed: torch.Tensor,
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> State:
        """Posterior at the same step as ``prior``: z_t ~ q(z | h_t, e_t[, c_t])."""
        inputs = [prior["deter"], embed] + ([context] if context is not None else [])
        dist = self._dist(self.post_logits(self.obs_out(torch.cat(inputs, -1))))
        return {"deter": prior["deter"], "stoch": dist.sample(generator), "logits": dist.logits}

    def reset_where(self, state: State, action: torch.Tensor, is_first: torch.Tensor) -> tuple[State, torch.Tensor]:
        """Replace state and previous action by the initial state and zeros where ``is_first`` (B,) is set."""
        mask = is_first.float()[:, None]
        init = self.initial(mask.shape[0])
        state = {
            k: v * (1 - mask.view(-1, *[1] * (v.dim() - 1))) + init[k] * mask.view(-1, *[1] * (v.dim() - 1))
            for k, v in state.items()
        }
        return state, action * (1 - mask)

    def observe(
        self,
        embed: torch.Tensor,
        prev_action: torch.Tensor,
        is_first: torch.Tensor,
        state: State | None = None,
        transition_context: torch.Tensor | None = None,
        posterior_context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[State, State]:
        """Filter a sequence. embed (B, T, E), prev_action (B, T, A) = a_{t-1}, is_first (B, T).

        ``state`` is the state before step 0 (None: the initial state). Returns (posteriors, priors), each a state
        with shapes (B, T, ...).
        """
        batch, length = embed.shape[:2]
        if state is None:
            state = self.initial(batch)
        posts, priors = [], []
        for t in range(length):
            prev, action = self.reset_where(state, prev_action[:, t], is_first[:, t])
            tctx = transition_context[:, t] if transition_context is not None else None
            pctx = posterior_context[:, t] if posterior_context is not None else None
            prior = self.img_step(prev, action, tctx, generator=generator)
            state = self.obs_step(prior, embed[:, t], pctx, generator=generator)
            posts.append(state)
            priors.append(prior)
        stack = lambda states: {k: torch.stack([s[k] for s in states], 1) for k in states[0]}  # noqa: E731
        return stack(posts), stack(priors)

    def kl_loss(
        self, post: State, prior: State, free_nats: float = 1.0, dyn_scale: float = 0.5, rep_scale: float = 0.1
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """KL balancing with free nats applied after summing over the S latents. Returns (loss (...), parts)."""
        dyn = categorical_kl(post["logits"].detach(), prior["logits"]).sum(-1)
        rep = categorical_kl(post["logits"], prior["logits"].detach()).sum(-1)
        loss = dyn_scale * dyn.clamp(min=free_nats) + rep_scale * rep.clamp(min=free_nats)
        return loss, {"kl_dyn": dyn, "kl_rep": rep}
