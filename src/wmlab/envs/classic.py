"""Contextual classic-control tasks: ``cartpole`` and ``pendulum`` with CARL semantics (spec/dali.md §7.4-§7.5).

CARL's ``CARLCartPole`` / ``CARLPendulum`` set attributes on gymnasium's environments; these classes do the same on
the same gymnasium classes, with the same initial-state draws from the same random stream (the test suite checks
trajectory equality against CARL), but always from a full context dict (CARL leaks values of earlier contexts when
given partial dicts) and without importing CARL's pygame/glfw/brax machinery at run time.
"""

from __future__ import annotations

import os

# gymnasium renders with pygame; without a display SDL needs its dummy drivers to stay quiet and headless.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium.envs.classic_control.cartpole import CartPoleEnv  # noqa: E402
from gymnasium.envs.classic_control.pendulum import PendulumEnv  # noqa: E402
from PIL import Image  # noqa: E402

from wmlab.envs.base import ContextualEnv  # noqa: E402
from wmlab.envs.contexts import context_space  # noqa: E402
from wmlab.errors import WmlabError  # noqa: E402


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) uint8 frame to (size, size, 3)."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


class CartPole(ContextualEnv):
    """CartPole-v1 with ``gravity`` and ``length`` (pole half-length). State 4, discrete actions {0, 1}.

    Actions may be given as an integer or as a one-hot vector.

    Args:
        consistent_length: also recompute ``polemass_length`` from the new length. CARL does not (the length then
            enters only the angular-acceleration denominator and the rendering); False reproduces CARL (spec §7.4).
        screen_size: side of the gymnasium frame before resizing to ``image_size`` (128 in the DALI release).
    """

    def __init__(
        self,
        obs: str = "state",
        context_obs: bool = False,
        image_size: int = 64,
        consistent_length: bool = False,
        screen_size: int = 128,
    ):
        self._env = CartPoleEnv(render_mode="rgb_array")
        self._env.screen_width = self._env.screen_height = screen_size
        super().__init__(context_space("cartpole"), obs, 4, context_obs, image_size)
        self.consistent_length = consistent_length
        self.action_space = gym.spaces.Discrete(2)

    def _apply_context(self, context: dict[str, float]) -> None:
        env = self._env
        env.gravity = context["gravity"]
        env.length = context["length"]
        if self.consistent_length:
            env.polemass_length = env.masspole * env.length

    def _reset_simulator(self, rng: np.random.Generator) -> None:
        self._env.np_random = rng
        self._env.reset()
        # CARL draws the initial state again, from U(-0.1, 0.1)^4, after gymnasium's own draw.
        self._env.state = rng.uniform(low=-0.1, high=0.1, size=(4,))

    def _native_action(self, action: Any) -> int:
        action = np.asarray(action)
        if action.ndim == 1 and action.shape[0] == 2:  # one-hot
            return int(action.argmax())
        if action.ndim == 0 and int(action) in (0, 1):
            return int(action)
        raise WmlabError(f"cartpole takes an action in {{0, 1}} or a one-hot vector of length 2, got {action!r}")

    def _step_simulator(self, action: int) -> tuple[float, bool]:
        _, reward, terminated, _, _ = self._env.step(action)
        return reward, terminated

    def _state(self) -> np.ndarray:
        return np.asarray(self._env.state, dtype=np.float32)

    def _render(self, size: int) -> np.ndarray:
        return _resize(self._env.render(), size)

    def render_state(self, state: np.ndarray, size: int = 64) -> np.ndarray:
        """The frame of a state observation (x, x_dot, theta, theta_dot), e.g. one a world model imagined (S, S, 3)."""
        self._env.state = np.asarray(state, np.float64)[:4]
        return self._render(size)

    def physics_parameters(self) -> dict[str, Any]:
        env = self._env
        return {
            "gravity": env.gravity,
            "length": env.length,
            "polemass_length": env.polemass_length,
            "masspole": env.masspole,
            "total_mass": env.total_mass,
            "force_mag": env.force_mag,
            "tau": env.tau,
        }

    def close(self) -> None:
        self._env.close()


class Pendulum(ContextualEnv):
    """Pendulum-v1 with length ``l`` and mass ``m``. State (cos, sin, angular velocity), action torque in [-2, 2].

    The initial state follows CARL: angle ~ U(0, pi), angular velocity ~ U(0, 1). Gravity is the attribute ``g``
    (10) and is not varied.
    """

    def __init__(self, obs: str = "state", context_obs: bool = False, image_size: int = 64):
        self._env = PendulumEnv(render_mode="rgb_array")
        super().__init__(context_space("pendulum"), obs, 3, context_obs, image_size)
        self.native_action_low = np.array([-self._env.max_torque])
        self.native_action_high = np.array([self._env.max_torque])
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _apply_context(self, context: dict[str, float]) -> None:
        self._env.l = context["l"]
        self._env.m = context["m"]

    def _reset_simulator(self, rng: np.random.Generator) -> None:
        self._env.np_random = rng
        self._env.reset()
        theta = rng.uniform(high=np.pi)
        theta_dot = rng.uniform(high=1.0)
        self._env.state = np.array([theta, theta_dot], dtype=np.float32)

    def _step_simulator(self, action: np.ndarray) -> tuple[float, bool]:
        _, reward, terminated, _, _ = self._env.step(action.astype(np.float32))
        self._env.last_u = float(self._env.last_u)  # pygame's renderer rejects numpy scalars
        return reward, terminated

    def _state(self) -> np.ndarray:
        theta, theta_dot = self._env.state
        return np.array([np.cos(theta), np.sin(theta), theta_dot], dtype=np.float32)

    def _render(self, size: int) -> np.ndarray:
        return _resize(self._env.render(), size)

    def render_state(self, state: np.ndarray, size: int = 64) -> np.ndarray:
        """The frame of a state observation (cos, sin, theta_dot), e.g. one a world model imagined (S, S, 3)."""
        cos, sin, theta_dot = np.asarray(state, np.float64)[:3]
        self._env.state = np.array([np.arctan2(sin, cos), theta_dot])
        self._env.last_u = None  # no torque arrow: the action is not part of the observation
        return self._render(size)

    def physics_parameters(self) -> dict[str, Any]:
        env = self._env
        return {"l": env.l, "m": env.m, "g": env.g, "dt": env.dt, "max_torque": env.max_torque}

    def close(self) -> None:
        self._env.close()
