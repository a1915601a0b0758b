"""A random-policy rollout of one environment in one context, for looking at what a context does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wmlab.envs.registry import make


@dataclass
class Preview:
    """What :func:`preview_rollout` saw.

    Attributes:
        frames: (T+1, S, S, 3) uint8 images, the reset frame first.
        rewards: (T,) rewards.
        context: the full context in force.
        outside_training_range: features beyond their training range (extrapolation).
        physics: the simulator's parameters read back after the reset.
    """

    frames: np.ndarray
    rewards: np.ndarray
    context: dict[str, float]
    outside_training_range: list[str]
    physics: dict[str, Any]


def preview_rollout(
    name: str,
    context: Mapping[str, float] | None = None,
    obs: str = "pixels",
    steps: int = 200,
    seed: int = 0,
    image_size: int = 128,
) -> Preview:
    """Roll out a uniform-random policy for up to ``steps`` steps (stops at the end of the episode)."""
    env = make(name, obs=obs, context=context or {}, seed=seed, image_size=image_size)
    env.action_space.seed(seed)
    try:
        observation, info = env.reset()
        physics = env.unwrapped.physics_parameters()
        frames = [observation["image"] if "image" in observation else env.unwrapped.render()]
        rewards = []
        for _ in range(steps):
            observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
            frames.append(observation["image"] if "image" in observation else env.unwrapped.render())
            rewards.append(reward)
            if terminated or truncated:
                break
    finally:
        env.close()
    return Preview(
        np.stack(frames), np.asarray(rewards, np.float32), info["context"], info["outside_training_range"], physics
    )
