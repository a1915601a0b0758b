"""The Dreamer agent: world model + actor-critic, their optimisers, one training update, and acting.

agent = DreamerAgent(cfg, obs_dim=3, action_dim=1, discrete=False)
metrics = agent.train_step(batch)                        # batch: numpy (B, T, ...) from the replay
state = agent.initial_policy_state(num_envs)
actions, state = agent.act(obs, is_first, state)         # obs: numpy (N, ...), is_first (N,)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from wmlab.dreamer.behavior import ActorCritic
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.world_model import WorldModel

#: per-env acting state: ``rssm`` posterior (N, ...), previous ``action`` (N, A), DALI ``tokens`` window (N, K, D)
#: and previous ``context`` (N, c) (the transition context of the next step)
PolicyState = dict[str, Any]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class DreamerAgent(nn.Module):
    """Args:
    cfg: the run's config.
    obs_dim: state size (state modality; ignored for pixels).
    action_dim: continuous action size or number of discrete actions.
    discrete: whether actions are one-hot.
    device: torch device.
    """

    def __init__(
        self, cfg: DreamerConfig, obs_dim: int, action_dim: int, discrete: bool, device: torch.device | str = "cpu"
    ):
        super().__init__()
        self.cfg, self.action_dim, self.discrete = cfg, action_dim, discrete
        self.wm = WorldModel(
            cfg.env.modality, obs_dim, action_dim, cfg.model, cfg.env.image_size, cfg.variant, cfg.context
        )
        self.ac = ActorCritic(self.wm.head_dim, action_dim, discrete, cfg.model, cfg.behavior)
        self.to(device)
        self.device = torch.device(device)
        m, b = cfg.model, cfg.behavior
        self.wm_opt = torch.optim.Adam(self.wm.parameters(), lr=m.lr, eps=m.eps)
        self.actor_opt = torch.optim.Adam(self.ac.actor.parameters(), lr=b.lr, eps=b.eps)
        self.critic_opt = torch.optim.Adam(self.ac.critic.parameters(), lr=b.lr, eps=b.eps)
        self._carry: dict[str, torch.Tensor] | None = None
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        if cfg.train.compile:
            self._compile_networks()

    def _compile_networks(self) -> None:
        """torch.compile every network the update calls, in place (parameter names and checkpoints unchanged).

        The RSSM's time loop and the sampling stay in Python (a Generator cannot enter a compiled graph); each
        step's networks run compiled, with LayerNorm, SiLU and the GRU gates fused.
        """
        import torch._dynamo

        # each network meets a few shapes (sequence, imagination, acting) and is called with parameters frozen
        # and not (actor and critic losses): allow those recompilations instead of falling back to eager
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        wm, ac = self.wm, self.ac
        modules = [wm.encoder, wm.decoder, wm.reward_head, wm.cont_head, ac.actor, ac.critic, ac.slow_critic]
        modules += [wm.rssm.img_in, wm.rssm.img_out, wm.rssm.obs_out, wm.rssm.prior_logits, wm.rssm.post_logits]
        modules += [getattr(wm, name, None) for name in ("gt_encoder", "gt_decoder")]
        for module in modules:
            if module is not None:
                module.compile()
        wm.rssm.transition = torch.compile(wm.rssm.transition)

    def _autocast(self) -> torch.autocast:
        """bf16 autocast for ``train.precision: bf16`` (heads return float32 for the distributions)."""
        enabled = self.cfg.train.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # -- training -------------------------------------------------------------------------------------------------
    def to_torch(self, batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {}
        for key, value in batch.items():
            tensor = torch.as_tensor(np.ascontiguousarray(value), device=self.device)
            out[key] = tensor.float() if tensor.dtype in (torch.float64, torch.float16) else tensor
        return out

    def train_step(self, batch: Mapping[str, np.ndarray]) -> dict[str, float]:
        """One world-model update and one actor-critic update on a replay batch (B, T, ...).

        With ``train.carry_state`` the last posterior of each batch slot starts the next batch's slot (DreamerV3 v1);
        the action into the first step is the replay's own ``prev_action`` (exact, unlike a carried action from an
        unrelated window), and ``is_first`` inside a window resets as usual.
        """
        data = self.to_torch(batch)
        start = self._carry if self.cfg.train.carry_state else None
        if start is not None and start["deter"].shape[0] != data["prev_action"].shape[0]:
            start = None
        with self._autocast():
            wm_loss, post, context, metrics = self.wm.loss(data, start, self.generator)
        self.wm_opt.zero_grad(set_to_none=True)
        wm_loss.backward()
        metrics["wm/grad_norm"] = nn.utils.clip_grad_norm_(self.wm.parameters(), self.cfg.model.grad_clip)
        self.wm_opt.step()
        self._carry = {k: v[:, -1].detach().float() for k, v in post.items()}

        with self._autocast():
            actor_loss, critic_loss, ac_metrics = self.ac.loss(self.wm, post, data, context, self.generator)
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (actor_loss + critic_loss).backward()  # disjoint parameters: one backward pass serves both
        b = self.cfg.behavior
        metrics["ac/actor_grad_norm"] = nn.utils.clip_grad_norm_(self.ac.actor.parameters(), b.grad_clip)
        metrics["ac/critic_grad_norm"] = nn.utils.clip_grad_norm_(self.ac.critic.parameters(), b.grad_clip)
        self.actor_opt.step()
        self.critic_opt.step()
        self.ac.update_slow_critic()
        metrics.update(ac_metrics)
        return {k: float(v) for k, v in metrics.items()}

    # -- acting ---------------------------------------------------------------------------------------------------
    def initial_policy_state(self, num_envs: int) -> PolicyState:
        with torch.no_grad():
            state = self.wm.rssm.initial(num_envs)
        policy_state = {"rssm": state, "action": torch.zeros(num_envs, self.action_dim, device=self.device)}
        if self.wm.infers:
            k = self.cfg.context.window
            policy_state["tokens"] = torch.zeros(num_envs, k, self.wm.token_dim, device=self.device)
            policy_state["context"] = torch.zeros(num_envs, self.wm.context_dim, device=self.device)
        return policy_state

    @torch.no_grad()
    def observe_step(
        self,
        obs: Mapping[str, np.ndarray],
        is_first: np.ndarray,
        policy_state: PolicyState,
        generator: torch.Generator | None = None,
    ) -> tuple[PolicyState, torch.Tensor | None]:
        """Filter one observation per env: returns the new policy state (posterior, token window) and the context
        kappa_t (N, c) used at this step (None for ``dreamer``). The previous action must be in the policy state."""
        generator = generator if generator is not None else self.generator
        wm = self.wm
        keys = [wm.obs_key] + (["context"] if wm.uses_gt else [])
        data = self.to_torch({k: obs[k] for k in keys})
        first = torch.as_tensor(np.asarray(is_first), device=self.device)
        state, prev_action = wm.rssm.reset_where(policy_state["rssm"], policy_state["action"], first)
        embed = wm.encode(data)
        new_state: PolicyState = {"action": prev_action}
        kappa = tctx = None
        if wm.uses_gt:
            kappa = tctx = data["context"]
        elif wm.infers:
            # the token window of the training path: [x_t, a_{t-1}], padded by repeating the episode's first token
            token = torch.cat([wm.token_features(data, embed), prev_action], -1)
            rolled = torch.cat([policy_state["tokens"][:, 1:], token[:, None]], 1)
            tokens = torch.where(first[:, None, None], token[:, None].expand_as(rolled), rolled)
            kappa = wm.context_encoder(tokens)
            tctx = torch.where(first[:, None], kappa, policy_state["context"])
            new_state.update(tokens=tokens, context=kappa)
        prior = wm.rssm.img_step(state, prev_action, tctx if wm.transition_uses_context else None, generator=generator)
        new_state["rssm"] = wm.rssm.obs_step(prior, embed, kappa if wm.variant == "dali-s" else None, generator)
        return new_state, kappa

    @torch.no_grad()
    def act(
        self,
        obs: Mapping[str, np.ndarray],
        is_first: np.ndarray,
        policy_state: PolicyState,
        mode: str = "sample",
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, PolicyState]:
        """One posterior step per env and an action from the actor.

        obs: numpy arrays (N, ...) (``context`` is read only by the ``crssm-*`` variants); is_first: (N,) bool.
        Returns actions (N, A) (one-hot when discrete) and the new policy state. ``mode``: ``sample`` (training and
        the DALI evaluation protocol) or ``mode`` (greedy). ``generator`` replaces the agent's own.
        """
        generator = generator if generator is not None else self.generator
        policy_state, kappa = self.observe_step(obs, is_first, policy_state, generator)
        dist = self.ac.policy(self.wm.head_features(policy_state["rssm"], kappa))
        action = dist.sample(generator) if mode == "sample" else dist.mode()
        if not self.discrete:
            action = action.clamp(-1, 1)
        policy_state["action"] = action
        return action.cpu().numpy(), policy_state

    # -- persistence ----------------------------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        return {
            "model": self.state_dict(),
            "wm_opt": self.wm_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "carry": self._carry,
            "generator": self.generator.get_state(),
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self._carry = state.get("carry")
        if "generator" in state:
            self.generator.set_state(state["generator"])
