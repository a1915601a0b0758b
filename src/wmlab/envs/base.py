"""The contextual-environment contract every wmlab environment follows.

A :class:`ContextualEnv` is a gymnasium environment whose physics is set from a full context dict at every reset:

    obs, info = env.reset(seed=0, options={"context": {"gravity": 4.0}})   # missing features take their defaults
    info["context"]                     # the raw context now in force
    info["outside_training_range"]      # features beyond the training range (extrapolation), possibly empty
    env.physics_parameters()            # what the simulator actually uses (gravity vector, gears, ...)

Observations are dicts with ``state`` (float32 vector) and/or ``image`` (uint8 HxWx3), plus ``context`` (GT context
normalized to [-1, 1] over the training range) only when ``context_obs=True``. Continuous actions are exposed in
[-1, 1] and mapped affinely onto the simulator's native range after clipping.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from wmlab.envs.contexts import ContextSpace
from wmlab.errors import unknown_name_error

OBS_MODES = ("state", "pixels", "both")


class ContextualEnv(gym.Env):
    """Base class: context application at reset, observation assembly and action scaling.

    Subclasses implement ``_apply_context`` (set every feature in the simulator), ``_reset_simulator``,
    ``_step_simulator``, ``_state``, ``_render`` and ``physics_parameters``, and set ``native_action_low/high``
    (continuous) or leave ``action_space`` discrete.

    Args:
        space: the environment's context features.
        obs: ``state``, ``pixels`` or ``both``.
        state_dim: length of the state vector.
        context_obs: add the normalized GT context as observation key ``context``.
        image_size: side of the square rendered image.
    """

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, space: ContextSpace, obs: str, state_dim: int, context_obs: bool = False, image_size: int = 64):
        if obs not in OBS_MODES:
            raise unknown_name_error("observation mode", obs, OBS_MODES)
        self.context_space = space
        self.obs_mode = obs
        self.context_obs = context_obs
        self.image_size = image_size
        self.context = space.defaults
        keys: dict[str, gym.Space] = {}
        if obs in ("state", "both"):
            keys["state"] = gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
        if obs in ("pixels", "both"):
            keys["image"] = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        if context_obs:
            keys["context"] = gym.spaces.Box(-np.inf, np.inf, (len(space.features),), np.float32)
        self.observation_space = gym.spaces.Dict(keys)

    # -- subclass hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def _apply_context(self, context: dict[str, float]) -> None:
        """Set every context feature in the simulator (full dict, so no value survives from a previous context)."""

    @abstractmethod
    def _reset_simulator(self, rng: np.random.Generator) -> None:
        """Draw an initial state."""

    @abstractmethod
    def _step_simulator(self, action: np.ndarray) -> tuple[float, bool]:
        """Advance one control step with a native action; return (reward, terminated)."""

    @abstractmethod
    def _state(self) -> np.ndarray:
        """The float32 state vector."""

    @abstractmethod
    def _render(self, size: int) -> np.ndarray:
        """A uint8 (size, size, 3) image of the current state."""

    @abstractmethod
    def physics_parameters(self) -> dict[str, Any]:
        """The physical parameters in force in the simulator, read back from it (not from the context dict)."""

    def _native_action(self, action: Any) -> np.ndarray:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        low, high = self.native_action_low, self.native_action_high
        return low + (action + 1.0) * 0.5 * (high - low)

    # -- gymnasium API --------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        requested = (options or {}).get("context")
        if requested is not None:
            self.context = self.context_space.complete(requested)
        self._apply_context(self.context)
        self._reset_simulator(self.np_random)
        return self._observation(), self._info()

    def step(self, action):
        reward, terminated = self._step_simulator(self._native_action(action))
        return self._observation(), float(reward), bool(terminated), False, self._info()

    def render(self) -> np.ndarray:
        return self._render(self.image_size)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {}
        if "state" in self.observation_space.spaces:
            obs["state"] = self._state().astype(np.float32)
        if "image" in self.observation_space.spaces:
            obs["image"] = self._render(self.image_size)
        if self.context_obs:
            obs["context"] = self.context_space.normalize(self.context)
        return obs

    def _info(self) -> dict[str, Any]:
        return {
            "context": dict(self.context),
            "outside_training_range": self.context_space.outside_training_range(self.context),
        }
