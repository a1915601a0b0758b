"""Gymnasium wrappers: action repeat, and the per-episode context schedule with seeding.

Time limits use gymnasium's own ``TimeLimit`` (truncation, never termination: spec §7.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from wmlab.envs.contexts import ContextSchedule
from wmlab.errors import WmlabError


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times, summing rewards; stops early when the episode ends."""

    def __init__(self, env: gym.Env, repeat: int):
        if repeat < 1:
            raise WmlabError(f"action repeat must be >= 1, got {repeat}")
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class ContextScheduleWrapper(gym.Wrapper):
    """Pick each episode's context from a :class:`ContextSchedule` and seed the first reset.

    ``reset(options={"context": ...})`` still overrides the schedule for that episode. The first reset without an
    explicit seed is seeded from (seed, worker_index), so ``make(..., seed=s)`` alone makes a run reproducible.
    """

    def __init__(self, env: gym.Env, schedule: ContextSchedule, seed: int, worker_index: int = 0):
        super().__init__(env)
        self.schedule = schedule
        self._first_seed: int | None = int(np.random.SeedSequence([seed, worker_index]).generate_state(1)[0])

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        options = dict(options or {})
        if options.get("context") is None:
            options["context"] = next(self.schedule)
        if seed is None:
            seed = self._first_seed
        self._first_seed = None
        return self.env.reset(seed=seed, options=options)
