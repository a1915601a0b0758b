"""Load a trained Dreamer run and act with it, in any environment of the same task.

policy = load_policy("runs/pend")                  # newest checkpoint of the run
env = wmlab.envs.make("pendulum", context={"l": 1.5})
result = evaluate(policy, env, episodes=10)        # {"returns": [...], "mean": ..., ...}

# or step it yourself, one env or a batch of N:
policy.reset(1)
obs, _ = env.reset(seed=0)
action = policy.act(obs, is_first=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from wmlab.dreamer.agent import DreamerAgent, resolve_device
from wmlab.dreamer.config import DreamerConfig
from wmlab.errors import WmlabError
from wmlab.progress import progress_bar
from wmlab.runs import Checkpointer, RunDir


class DreamerPolicy:
    """A trained agent's actor behind a gymnasium-friendly interface.

    Args:
        agent: the loaded agent.
        mode: ``sample`` (the DALI evaluation protocol) or ``mode`` (greedy).
        step: env steps the checkpoint was trained for.
    """

    def __init__(self, agent: DreamerAgent, mode: str = "sample", step: int = 0):
        if mode not in ("sample", "mode"):
            raise WmlabError(f"policy mode must be 'sample' or 'mode', got {mode!r}")
        self.agent, self.mode, self.step = agent, mode, step
        self.config: DreamerConfig = agent.cfg
        self._state = agent.initial_policy_state(1)
        self.generator = torch.Generator(device=agent.device).manual_seed(0)

    def seed(self, seed: int) -> None:
        """Seed the policy's own sampling (the agent's training generator is never touched)."""
        self.generator.manual_seed(seed)

    def reset(self, num_envs: int = 1) -> None:
        self._state = self.agent.initial_policy_state(num_envs)

    def act(self, obs: Mapping[str, np.ndarray], is_first: bool | np.ndarray) -> np.ndarray | int:
        """Action(s) for one observation dict (unbatched) or a batch (N, ...); returns the env's action format."""
        key = self.agent.wm.obs_key
        if key not in obs:
            raise WmlabError(
                f"this policy was trained on '{key}' observations; make the env with "
                f"obs={'state' if key == 'state' else 'pixels'!r}"
            )
        keys = [key] + (["context"] if self.agent.wm.uses_gt else [])
        if "context" in keys and "context" not in obs:
            raise WmlabError(
                f"a {self.agent.cfg.variant} policy reads the ground-truth context: make the env with context_obs=True"
            )
        single = np.asarray(obs[key]).ndim == (1 if key == "state" else 3)
        batch = {k: np.asarray(obs[k])[None] if single else np.asarray(obs[k]) for k in keys}
        first = np.atleast_1d(np.asarray(is_first, bool))
        actions, self._state = self.agent.act(batch, first, self._state, self.mode, self.generator)
        if self.agent.discrete:
            actions = actions.argmax(-1)
        return actions[0] if single else actions


def load_policy(run: str | Path, mode: str = "sample", device: str = "auto") -> DreamerPolicy:
    """The policy of the newest checkpoint of a Dreamer run directory."""
    run_dir = RunDir(run)
    run_dir.require_kind("dreamer")
    cfg = run_dir.load_config(DreamerConfig)
    checkpoint = Checkpointer(run_dir.checkpoints_dir).load_latest(map_location="cpu")
    if checkpoint is None:
        raise WmlabError(f"{run_dir.path} has no checkpoint yet; train it first (wmlab train dreamer ... --run {run})")
    from wmlab.envs import ENV_SPECS, make

    obs_dim = ENV_SPECS[cfg.env.name].state_dim
    probe = make(cfg.env.name)
    space = probe.action_space
    probe.close()
    discrete = isinstance(space, gym.spaces.Discrete)
    action_dim = int(space.n) if discrete else int(np.prod(space.shape))
    agent = DreamerAgent(cfg, obs_dim, action_dim, discrete, resolve_device(device))
    agent.load_training_state(checkpoint["agent"])
    agent.eval()
    return DreamerPolicy(agent, mode, checkpoint["counters"]["env_steps"])


def evaluate(
    policy: DreamerPolicy, env: gym.Env, episodes: int, seed: int = 0, show_progress: bool = False
) -> dict[str, Any]:
    """Run ``episodes`` full episodes. Returns returns, lengths, their mean/std/min/max and the contexts seen."""
    returns, lengths, contexts = [], [], []
    policy.seed(seed)
    with progress_bar("eval", episodes, "episodes", show_progress) as advance:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            contexts.append(info.get("context"))
            policy.reset(1)
            total, length, first, done = 0.0, 0, True, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs, first))
                total, length, first, done = total + reward, length + 1, False, terminated or truncated
            returns.append(total)
            lengths.append(length)
            advance(1, ret=total)
    r = np.asarray(returns)
    return {
        "returns": returns,
        "lengths": lengths,
        "contexts": contexts,
        "mean": float(r.mean()),
        "std": float(r.std()),
        "min": float(r.min()),
        "max": float(r.max()),
        "episodes": episodes,
    }
