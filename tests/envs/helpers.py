"""Rollouts with fixed seeds and actions, shared by the environment tests."""

import numpy as np


def rollout(env, context, actions, seed=0, key="state"):
    """Reset ``env`` into ``context`` with ``seed`` and play ``actions``; returns stacked observations[key]."""
    obs, _ = env.reset(seed=seed, options={"context": context})
    out = [obs[key]]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        out.append(obs[key])
        if terminated or truncated:
            break
    return np.stack(out)


def random_actions(env, n, seed=0):
    rng = np.random.default_rng(seed)
    space = env.action_space
    if hasattr(space, "n"):
        return [int(a) for a in rng.integers(0, space.n, n)]
    return [rng.uniform(-1, 1, space.shape) for _ in range(n)]
