"""Contextual DeepMind Control tasks: ``walker`` (walk) and ``ball_in_cup`` (catch), spec/dali.md §7.2-§7.3.

Why not CARL's ``CARLDmcWalkerEnv`` directly: CARL rebuilds the MuJoCo model from XML on every context switch
(~60 ms, plus a new GL context when rendering), and round-robin training switches context at every reset. Here the
context is written into the compiled model in place (gravity, actuator gears, tendon range, body position: the same
fields CARL's XML edit changes), which costs microseconds and keeps the renderer. Every feature is written at every
reset, and the test suite checks trajectories against models freshly compiled from CARL-style edited XML. No
``carl-bench`` release has ball-in-cup, so it is written here on the dm_control suite task.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the dm_control import; EGL runs headless on CPU too

from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402

from wmlab.envs.base import ContextualEnv  # noqa: E402
from wmlab.envs.contexts import context_space  # noqa: E402

_FAST_RENDER_FLAGS = {"shadow": False, "reflection": False}


class DmcContextualEnv(ContextualEnv):
    """A dm_control suite task with in-place context application.

    Args:
        domain, task: dm_control suite names.
        env_name: wmlab name whose context space applies.
        obs: ``state``, ``pixels`` or ``both``.
        context_obs: add the normalized GT context to observations.
        image_size: rendered image side (64 for the world models).
        fast_render: render without shadows and reflections (measured here: 4.4 vs 14.5 ms per 64 px walker frame).
        camera_id: MuJoCo camera used for pixels.
    """

    def __init__(
        self,
        domain: str,
        task: str,
        env_name: str,
        obs: str = "state",
        context_obs: bool = False,
        image_size: int = 64,
        fast_render: bool = True,
        camera_id: int = 0,
    ):
        # The time limit is a wrapper (wrappers.TimeLimit), so the dm_control env itself never ends an episode.
        self._env = suite.load(domain, task, task_kwargs={"time_limit": float("inf"), "random": 0})
        self.physics = self._env.physics
        state_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        super().__init__(context_space(env_name), obs, state_dim, context_obs, image_size)
        spec = self._env.action_spec()
        self.native_action_low = spec.minimum.astype(np.float64)
        self.native_action_high = spec.maximum.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self.control_timestep = self._env.control_timestep()
        self._render_flags = _FAST_RENDER_FLAGS if fast_render else None
        self._camera_id = camera_id
        self._timestep = None

    @property
    def model(self):
        return self.physics.model

    def _set_gravity(self, g: float) -> None:
        self.model.opt.gravity[:] = (0.0, 0.0, -g)

    def _reset_simulator(self, rng: np.random.Generator) -> None:
        # dm_control tasks draw their initial state from their own RandomState: derive it from gymnasium's np_random
        # so that reset(seed=...) alone determines the episode.
        self._env.task._random = np.random.RandomState(int(rng.integers(2**31 - 1)))
        self._timestep = self._env.reset()

    def _step_simulator(self, action: np.ndarray) -> tuple[float, bool]:
        self._timestep = self._env.step(action)
        return float(self._timestep.reward or 0.0), False  # DMC tasks never terminate

    def _state(self) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in self._timestep.observation.values()])

    def _render(self, size: int) -> np.ndarray:
        return self.physics.render(size, size, camera_id=self._camera_id, render_flag_overrides=self._render_flags)

    def close(self) -> None:
        self._env.close()


class Walker(DmcContextualEnv):
    """DMC walker-walk with ``gravity`` and ``actuator_strength`` (every gear scaled). State 24, action 6."""

    def __init__(self, **kwargs: Any):
        super().__init__("walker", "walk", "walker", **kwargs)
        self._default_gear = self.model.actuator_gear[:, 0].copy()

    def _apply_context(self, context: dict[str, float]) -> None:
        self._set_gravity(context["gravity"])
        self.model.actuator_gear[:, 0] = self._default_gear * context["actuator_strength"]

    def physics_parameters(self) -> dict[str, Any]:
        return {
            "gravity_vector": self.model.opt.gravity.tolist(),
            "actuator_gears": self.model.actuator_gear[:, 0].tolist(),
            "timestep": float(self.model.opt.timestep),
            "control_timestep": self.control_timestep,
        }


class BallInCup(DmcContextualEnv):
    """DMC ball-in-cup catch with ``gravity`` and ``string_length``. State 8, action 2.

    Args:
        ball_anchor_shift: move the ball body's anchor by +(0.3 - L) in z so that slide position 0 stays near the
            hanging rest position for every string length (the DALI authors' CARL version; spec §7.3). With False
            only the tendon range changes.
    """

    DEFAULT_STRING_LENGTH = 0.3
    DEFAULT_BALL_Z = 0.2

    def __init__(self, ball_anchor_shift: bool = True, **kwargs: Any):
        super().__init__("ball_in_cup", "catch", "ball_in_cup", **kwargs)
        self.ball_anchor_shift = ball_anchor_shift
        self._string = mujoco.mj_name2id(self.model.ptr, mujoco.mjtObj.mjOBJ_TENDON, "string")
        self._ball = mujoco.mj_name2id(self.model.ptr, mujoco.mjtObj.mjOBJ_BODY, "ball")

    def _apply_context(self, context: dict[str, float]) -> None:
        length = context["string_length"]
        self._set_gravity(context["gravity"])
        self.model.tendon_range[self._string] = (0.0, length)
        shift = self.DEFAULT_STRING_LENGTH - length if self.ball_anchor_shift else 0.0
        self.model.body_pos[self._ball, 2] = self.DEFAULT_BALL_Z + shift

    def physics_parameters(self) -> dict[str, Any]:
        return {
            "gravity_vector": self.model.opt.gravity.tolist(),
            "string_tendon_range": self.model.tendon_range[self._string].tolist(),
            "ball_anchor_z": float(self.model.body_pos[self._ball, 2]),
            "actuator_gears": self.model.actuator_gear[:, 0].tolist(),
            "timestep": float(self.model.opt.timestep),
            "control_timestep": self.control_timestep,
        }
