"""Imagination actor-critic of DreamerV3 v1 (spec/dali.md §3.5).

From every posterior state of a batch (stop-gradiented), the actor imagines H steps in the world model. Rewards
and continuation flags come from the world-model heads; lambda-returns bootstrap from the fast critic; advantages
are divided by max(1, EMA(P95) - EMA(P5)) of the returns. Continuous actors learn by backpropagating through the
imagined dynamics, discrete actors by REINFORCE. The critic is a two-hot symlog regressor regularised towards an
EMA ("slow") copy of itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from contextlib import contextmanager

import torch
from torch import nn

from wmlab.dreamer.config import BehaviorConfig, ModelConfig
from wmlab.dreamer.rssm import State
from wmlab.dreamer.world_model import WorldModel
from wmlab.nn.distributions import BoundedNormal, OneHotDist, TwoHot
from wmlab.nn.layers import MLPHead


@contextmanager
def frozen(*modules: nn.Module):
    """Temporarily stop parameter gradients of ``modules`` (gradients still flow through their inputs)."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def lambda_returns(
    reward: torch.Tensor, cont: torch.Tensor, value: torch.Tensor, discount: float, lam: float | torch.Tensor
) -> torch.Tensor:
    """R_tau = r_{tau+1} + gamma c_{tau+1} [(1 - lam_{tau+1}) v_{tau+1} + lam_{tau+1} R_{tau+1}], R_H = v_H.

    reward, cont: (H, N) for steps 1..H; value: (H + 1, N) for steps 0..H; lam: a float, or (H, N) per step 1..H
    (0 where a return must stop chaining and bootstrap). Returns (H, N) for 0..H-1.
    """
    returns = [value[-1]]
    for tau in reversed(range(reward.shape[0])):
        lam_tau = lam[tau] if torch.is_tensor(lam) else lam
        returns.append(reward[tau] + discount * cont[tau] * ((1 - lam_tau) * value[tau + 1] + lam_tau * returns[-1]))
    return torch.stack(returns[1:][::-1])


def replay_returns(
    reward: torch.Tensor,
    is_terminal: torch.Tensor,
    is_last: torch.Tensor,
    is_first: torch.Tensor,
    boot: torch.Tensor,
    discount: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambda-returns along replayed sequences (the replay value loss of DreamerV3 v2), and where they are valid.

    R_t = r_{t+1} + gamma (1 - terminal_{t+1}) [(1 - lam c_{t+1}) boot_{t+1} + lam c_{t+1} R_{t+1}], R_{T-1} =
    boot_{T-1}, where c_{t+1} = 0 when step t+1 ends its episode in the window (``is_last``, or the next step starts
    a new episode: a window may cross episodes, and an episode cut by a resume has no ``is_last``). A return from an
    episode's last step would bootstrap into the next episode, so it is invalid.

    reward, is_terminal, is_last, is_first, boot: (B, T), ``boot`` the imagined return from each step's posterior.
    Returns (returns (B, T - 1) for steps 0..T-2, validity weights (B, T - 1)).
    """
    ends = is_last.bool().clone()
    ends[:, :-1] |= is_first.bool()[:, 1:]
    chain = lam * (1.0 - ends.float())
    cont = 1.0 - is_terminal.float()
    returns = lambda_returns(reward.T[1:], cont.T[1:], boot.T, discount, chain.T[1:])  # time first
    return returns.T, 1.0 - ends[:, :-1].float()


class ActorCritic(nn.Module):
    """Args:
    feature_dim: size of the actor/critic input ([h, z] plus any context).
    action_dim: continuous action size or number of discrete actions.
    discrete: one-hot categorical actor (REINFORCE) instead of the bounded Normal (dynamics backprop).
    model_cfg: head sizes and unimix; cfg: behaviour hyperparameters.
    """

    def __init__(self, feature_dim: int, action_dim: int, discrete: bool, model_cfg: ModelConfig, cfg: BehaviorConfig):
        super().__init__()
        self.discrete, self.cfg, self.unimix = discrete, cfg, model_cfg.unimix
        out = action_dim if discrete else 2 * action_dim
        self.actor = MLPHead(feature_dim, out, model_cfg.units, model_cfg.layers)
        self.critic = MLPHead(feature_dim, 255, model_cfg.units, model_cfg.layers, zero_output=True)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("retnorm_low", torch.zeros(()))
        self.register_buffer("retnorm_high", torch.zeros(()))

    def policy(self, features: torch.Tensor) -> BoundedNormal | OneHotDist:
        out = self.actor(features)
        if self.discrete:
            return OneHotDist(out, self.unimix)
        mean, std = out.chunk(2, -1)
        return BoundedNormal(mean, std)

    def value(self, features: torch.Tensor, bins: torch.Tensor, slow: bool = False) -> TwoHot:
        return TwoHot((self.slow_critic if slow else self.critic)(features), bins)

    def imagine(
        self,
        wm: WorldModel,
        start: State,
        horizon: int,
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll the policy out in the world model with the context held fixed. start: state (N, ...); context (N, c).

        Returns head features (H + 1, N, F) (start included, the context appended for deep variants), the context
        seen at every step (H + 1, N, c) (empty when the variant has none) and actions (H, N, A).
        """
        transition_context = context if wm.transition_uses_context else None
        state, features, actions = start, [wm.head_features(start, context)], []
        for _ in range(horizon):
            action = self.policy(features[-1].detach()).sample(generator)
            state = wm.rssm.img_step(state, action, transition_context, generator=generator)
            features.append(wm.head_features(state, context))
            actions.append(action)
        n = features[0].shape[0]
        held = context if context is not None else features[0].new_zeros(n, 0)
        return torch.stack(features), held.expand(horizon + 1, -1, -1), torch.stack(actions)

    def update_return_scale(self, returns: torch.Tensor) -> torch.Tensor:
        """EMA of the 5th/95th percentiles of the returns; returns the scale max(1, high - low)."""
        flat = returns.detach().flatten().float()
        low, high = torch.quantile(flat, self.cfg.retnorm_low), torch.quantile(flat, self.cfg.retnorm_high)
        decay = self.cfg.retnorm_decay
        self.retnorm_low.mul_(decay).add_((1 - decay) * low)
        self.retnorm_high.mul_(decay).add_((1 - decay) * high)
        return (self.retnorm_high - self.retnorm_low).clamp(min=1.0)

    def loss(
        self,
        wm: WorldModel,
        post: State,
        data: Mapping[str, torch.Tensor],
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Actor and critic losses from every posterior state of a batch. post: (B, T, ...); data: the batch's
        ``is_terminal`` (B, T), and ``reward``, ``is_last``, ``is_first`` (B, T) when ``replay_value_scale`` > 0;
        context: the per-step context kappa (B, T, c) of the variant, or None.

        Returns (actor_loss, critic_loss, metrics). World-model parameters receive no gradient.
        """
        cfg = self.cfg
        is_terminal = data["is_terminal"]
        start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
        context = None if context is None else context.detach().flatten(0, 1)
        with frozen(wm, self.critic):
            features, _, actions = self.imagine(wm, start, cfg.horizon, context, generator)
            reward = wm.reward(features[1:]).mean()
            cont_logits = wm.cont_logits(features[1:])
            cont = torch.sigmoid(cont_logits) if cfg.imagined_continue == "mean" else (cont_logits > 0).float()
            cont = torch.cat([1.0 - is_terminal.flatten()[None].float(), cont])  # (H + 1, N)
            value = self.value(features, wm.bins).mean()
            returns = lambda_returns(reward, cont[1:], value, cfg.discount, cfg.lam)
        weight = (torch.cumprod(cfg.discount * cont, 0) / cfg.discount).detach()  # (H + 1, N)
        scale = self.update_return_scale(returns)
        advantage = (returns - value[:-1]) / scale
        policy = self.policy(features[:-1].detach())
        entropy = policy.entropy()
        if self.discrete:
            objective = policy.log_prob(actions.detach()) * advantage.detach()
        else:
            objective = advantage
        actor_loss = -(weight[:-1] * (objective + cfg.entropy * entropy)).mean()
        critic_features = features[:-1].detach()
        dist = self.value(critic_features, wm.bins)
        slow_target = self.value(critic_features, wm.bins, slow=True).mean().detach()
        critic_nll = -dist.log_prob(returns.detach()) - cfg.critic_slowreg * dist.log_prob(slow_target)
        critic_loss = (weight[:-1] * critic_nll).mean()
        metrics = {}
        if cfg.replay_value_scale > 0:  # the critic's outputs at the start (posterior) states serve both losses
            start_value = TwoHot(dist.logits[0], wm.bins)
            replay_loss, metrics = self._replay_value_loss(start_value, slow_target[0], returns[0], data)
            critic_loss = critic_loss + cfg.replay_value_scale * replay_loss
        metrics |= {
            "ac/actor_loss": actor_loss,
            "ac/critic_loss": critic_loss,
            "ac/entropy": entropy.mean(),
            "ac/return": returns.mean(),
            "ac/value": value.mean(),
            "ac/imag_reward": reward.mean(),
            "ac/return_scale": scale,
            "ac/advantage": advantage.mean(),
            "ac/imag_terminal": (cont_logits < 0).float().mean(),  # imagined steps the model calls terminal
        }
        return actor_loss, critic_loss, {k: v.detach() for k, v in metrics.items()}

    def _replay_value_loss(
        self,
        start_value: TwoHot,
        slow_start_value: torch.Tensor,
        imagined_return: torch.Tensor,
        data: Mapping[str, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic loss on the replayed sequences: two-hot NLL of :func:`replay_returns` plus the slow regulariser.

        start_value: the critic at every posterior state, over (B T,); slow_start_value: the slow critic's mean there
        (B T,); imagined_return: the lambda-return imagined from each (B T,).
        """
        b, t = data["is_terminal"].shape
        returns, valid = replay_returns(
            data["reward"],
            data["is_terminal"],
            data["is_last"],
            data["is_first"],
            imagined_return.detach().reshape(b, t),
            self.cfg.discount,
            self.cfg.replay_value_lam,
        )
        dist = TwoHot(start_value.logits.reshape(b, t, -1)[:, :-1], start_value.bins)
        slow_target = slow_start_value.reshape(b, t)[:, :-1]
        nll = -dist.log_prob(returns.detach()) - self.cfg.critic_slowreg * dist.log_prob(slow_target)
        count = valid.sum().clamp(min=1.0)
        loss = (valid * nll).sum() / count
        return loss, {"ac/replay_value_loss": loss, "ac/replay_return": (valid * returns).sum() / count}

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        fraction = self.cfg.slow_critic_fraction
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.mul_(1 - fraction).add_(fraction * fast)
