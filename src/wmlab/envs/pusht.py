"""PushT with DINO-WM semantics on gym-pusht's simulator (spec/latent_actions.md §3).

gym-pusht 0.1.8 supplies the pymunk space, bodies, walls, collision handler and the pygame drawing (its ``_setup``
and ``_draw``, used as is; frames are resized exactly like its ``_get_img``). This class changes what DINO-WM changes:

- **relative actions** in units of 100 px: the PD target is ``p_agent + 100 a`` (gym-pusht takes absolute targets);
- **exact** ``reset(options={"reset_to_state": s})``: gym-pusht sets the block position before the angle, and
  pymunk rotates about the centre of gravity, so the block lands elsewhere; here the angle is set first;
- observations ``{"state": float64[5|7], "image": uint8[S, S, 3]}``; no termination on success;
- success rules and distances as pure functions (:mod:`wmlab.envs.pusht_success`).

    env = PushT(image_size=96)
    obs, info = env.reset(seed=0)                                      # random non-overlapping state
    obs, info = env.reset(options={"reset_to_state": [100, 100, 256, 256, np.pi / 4]})
    obs, reward, terminated, truncated, info = env.step(np.array([0.2, 0.0]))   # target 20 px to the right
    frames, states = env.rollout(init_state, actions_px)              # (T+1, S, S, 3), (T+1, 5)

Units: positions in px of the 512 x 512 frame, angles in rad (state angle reduced to [0, 2 pi)), velocities in px/s.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

# pygame is imported by gym-pusht: keep it headless and quiet.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import cv2  # noqa: E402
import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pygame  # noqa: E402
from gym_pusht.envs.pusht import PushTEnv  # noqa: E402
from gym_pusht.envs.pymunk_override import DrawOptions  # noqa: E402

from wmlab.envs.base import OBS_MODES  # noqa: E402
from wmlab.envs.pusht_geometry import (  # noqa: E402
    AGENT_RADIUS,
    ARENA_SIZE,
    GOAL_POSE,
    reduce_angle,
    sample_initial_state,
)
from wmlab.envs.pusht_success import COVERAGE_THRESHOLD, coverage  # noqa: E402
from wmlab.errors import WmlabError, unknown_name_error  # noqa: E402

ACTION_SCALE = 100.0  # px per action unit: target = p_agent + ACTION_SCALE * a
K_P, K_V = 100.0, 20.0  # PD gains on position error and velocity
CONTROL_HZ = 10  # env steps per second
DT = 0.01  # physics substep (100 Hz)
SUBSTEPS = 10  # physics substeps per env step
TARGET_BOUNDS = (AGENT_RADIUS, ARENA_SIZE - AGENT_RADIUS)  # clip_target keeps the target in [15, 497]^2
RESET_OPTIONS = ("reset_to_state",)


class PushT(gym.Env):
    """PushT (agent disc pushes a T block) with DINO-WM's relative actions, exact resets and dict observations.

    Actions are relative displacements of the PD target in units of 100 px, float (2,). They are not clipped, as
    in the reference; the declared box only bounds useful values (one arena width). Each step runs 10 PD-controlled
    physics substeps of 0.01 s. ``reward`` is gym-pusht's ``clip(coverage / 0.95, 0, 1)`` against the fixed goal
    marker pose (unused by wmlab); ``terminated`` and ``truncated`` are always False: evaluators decide success and
    a ``TimeLimit`` wrapper ends episodes.

    ``info`` after ``reset`` and ``step``: ``coverage`` (of the goal marker pose (256, 256, pi/4) by the block),
    ``n_contacts`` (contact points per substep, rounded up, over all pairs incl. block-wall, as the reference
    computes it), ``n_agent_contacts`` (the same for agent-block pairs only), ``agent_vel`` (2,) px/s,
    ``block_pose`` (3,) (x, y, angle in [0, 2 pi)) and ``target`` (2,), the absolute PD target of the step in px
    (the agent position at reset).

    Args:
        obs: ``both`` (``state`` and ``image``), ``state`` (no rendering: fast) or ``pixels`` (``image`` only).
        image_size: side S of the rendered image. gym-pusht draws a 512 x 512 canvas and resizes it (bilinear), so
            the cost hardly depends on S. 224 is the reference; 112, 98 and 96 suit CPU datasets.
        with_velocity: append the agent velocity (vx, vy) to the state (7-d instead of 5-d).
        with_target: draw the light-green T at the fixed pose (256, 256, pi/4): a visual anchor, not the goal.
        clip_target: clip the absolute PD target to [15, 497]^2 (off in the reference; without it large relative
            actions drive the kinematic agent through the walls).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    render_mode = "rgb_array"

    def __init__(
        self,
        obs: str = "both",
        image_size: int = 224,
        with_velocity: bool = False,
        with_target: bool = True,
        clip_target: bool = False,
    ):
        if obs not in OBS_MODES:
            raise unknown_name_error("observation mode", obs, OBS_MODES)
        if int(image_size) != image_size or image_size < 1:
            raise WmlabError(f"image_size must be a positive integer (224, 112, 98, 96, ...); got {image_size!r}")
        self.obs_mode = obs
        self.image_size = int(image_size)
        self.with_velocity = with_velocity
        self.with_target = with_target
        self.clip_target = clip_target
        self.state_dim = 7 if with_velocity else 5
        keys: dict[str, gym.Space] = {}
        if obs in ("state", "both"):
            keys["state"] = gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float64)
        if obs in ("pixels", "both"):
            keys["image"] = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(keys)
        bound = ARENA_SIZE / ACTION_SCALE
        self.action_space = gym.spaces.Box(-bound, bound, (2,), np.float64)
        # gym-pusht's env is only a holder of the space, bodies and renderer; its step / reset are not used.
        self._sim = PushTEnv(obs_type="state", render_mode="rgb_array")
        self._target = np.zeros(2)
        self._n_contact_points = 0
        self._n_agent_contact_points = 0
        self._set_state(np.array([256.0, 400.0, 256.0, 300.0, 0.0]))  # gym-pusht's layout until the first reset

    # -- simulator access -----------------------------------------------------------------------------------------
    @property
    def space(self):
        """The pymunk space in force (a fresh one after every reset)."""
        return self._sim.space

    @property
    def agent(self):
        """The kinematic agent body (circle of radius 15 px)."""
        return self._sim.agent

    @property
    def block(self):
        """The T block body."""
        return self._sim.block

    def parameters(self) -> dict[str, Any]:
        """Everything that fixes this env's data: stored with datasets (spec §4.2)."""
        return {
            "image_size": self.image_size,
            "with_velocity": self.with_velocity,
            "with_target": self.with_target,
            "clip_target": self.clip_target,
            "action_scale": ACTION_SCALE,
            "k_p": K_P,
            "k_v": K_V,
            "control_hz": CONTROL_HZ,
            "physics_hz": round(1 / DT),
        }

    def _count_contacts(self, arbiter, space, data) -> None:
        n = len(arbiter.contact_point_set.points)
        self._n_contact_points += n
        a, b = arbiter.shapes
        if a.body is self._sim.agent or b.body is self._sim.agent:
            self._n_agent_contact_points += n

    def _set_state(self, state: np.ndarray) -> None:
        """Put the simulator exactly in ``state`` (5-d, or 7-d with the agent velocity; missing velocity = 0)."""
        sim = self._sim
        # A fresh space every time: zero block velocities and no cached contact impulses (pymunk warm-starts from
        # them), so that the same state always continues the same way.
        sim._setup()
        sim.space.add_collision_handler(0, 0).post_solve = self._count_contacts
        agent, block = sim.agent, sim.block
        agent.position, agent.velocity = (float(state[0]), float(state[1])), (0.0, 0.0)
        # Angle first: pymunk rotates a body about its centre of gravity, which is not the T's reference point, so
        # setting the angle after the position (gym-pusht's legacy order) moves the block (spec §3.4).
        block.angle = float(state[4])
        block.position = (float(state[2]), float(state[3]))
        # DINO-WM's reset takes one 0.01 s physics step here. pymunk integrates positions before it detects
        # contacts, so from rest this step moves nothing; but it primes pymunk's collision caches, and later
        # contacts depend on them (trajectories differ by up to tens of px without it): kept for parity with the
        # reference. Overlaps (an agent placed inside the block) are pushed apart from the first env step on, as in
        # the reference. The agent's velocity is set only afterwards, so that this step cannot move the agent.
        sim.space.step(DT)
        agent.velocity = (float(state[5]), float(state[6])) if len(state) == 7 else (0.0, 0.0)
        self._target = np.array(agent.position)
        self._n_contact_points = self._n_agent_contact_points = 0

    def _advance(self, rel_px: np.ndarray) -> None:
        """One env step: PD control towards ``p_agent + rel_px`` over 10 physics substeps of 0.01 s."""
        agent, space = self._sim.agent, self._sim.space
        px, py = agent.position
        tx, ty = px + float(rel_px[0]), py + float(rel_px[1])
        if self.clip_target:
            low, high = TARGET_BOUNDS
            tx, ty = min(max(tx, low), high), min(max(ty, low), high)
        self._target = np.array([tx, ty])
        self._n_contact_points = self._n_agent_contact_points = 0
        for _ in range(SUBSTEPS):
            # acc = k_p (target - p) + k_v (0 - v); v += acc dt; then one physics step (same float ops as gym-pusht)
            (px, py), (vx, vy) = agent.position, agent.velocity
            ax = K_P * (tx - px) + K_V * (0.0 - vx)
            ay = K_P * (ty - py) + K_V * (0.0 - vy)
            agent.velocity = (vx + ax * DT, vy + ay * DT)
            space.step(DT)

    # -- observations ---------------------------------------------------------------------------------------------
    def state(self) -> np.ndarray:
        """The current state, float64 (5,) ``[agent_x, agent_y, block_x, block_y, block_angle]`` or (7,) with
        ``agent_vx, agent_vy`` appended when ``with_velocity``."""
        agent, block = self._sim.agent, self._sim.block
        values = [*agent.position, *block.position, float(reduce_angle(block.angle))]
        if self.with_velocity:
            values += [*agent.velocity]
        return np.array(values, dtype=np.float64)

    def render(self) -> np.ndarray:
        """The current frame, uint8 (S, S, 3)."""
        if self.with_target:
            screen = self._sim._draw()  # gym-pusht draws the goal marker, then the space
        else:
            screen = pygame.Surface((ARENA_SIZE, ARENA_SIZE))
            screen.fill((255, 255, 255))
            self._sim.space.debug_draw(DrawOptions(screen))
        # The pixels of gym-pusht's ``_get_img`` (a test checks equality), but the canvas is read row-major in one
        # copy instead of through a transposed surfarray view: about twice as fast.
        canvas = np.frombuffer(pygame.image.tobytes(screen, "RGB"), np.uint8).reshape(ARENA_SIZE, ARENA_SIZE, 3)
        return cv2.resize(canvas, (self.image_size, self.image_size))  # bilinear, as gym-pusht and DINO-WM

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {}
        if "state" in self.observation_space.spaces:
            obs["state"] = self.state()
        if "image" in self.observation_space.spaces:
            obs["image"] = self.render()
        return obs

    def _info(self) -> dict[str, Any]:
        agent, block = self._sim.agent, self._sim.block
        block_pose = np.array([*block.position, float(reduce_angle(block.angle))])
        return {
            "coverage": float(coverage(GOAL_POSE, block_pose)),
            "n_contacts": math.ceil(self._n_contact_points / SUBSTEPS),
            "n_agent_contacts": math.ceil(self._n_agent_contact_points / SUBSTEPS),
            "agent_vel": np.array(agent.velocity),
            "block_pose": block_pose,
            "target": self._target.copy(),
        }

    # -- gymnasium API --------------------------------------------------------------------------------------------
    def _checked_state(self, state: Any) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64)
        if state.shape not in ((5,), (7,)) or not np.isfinite(state).all():
            raise WmlabError(
                "reset_to_state must be a finite 5-d [agent_x, agent_y, block_x, block_y, block_angle] state (px, rad) "
                f"or 7-d with the agent velocity (px/s) appended; got {state.tolist()!r}"
            )
        return state

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Reset to ``options["reset_to_state"]`` exactly, or to a random non-overlapping state drawn from the
        env's generator (``seed`` reseeds it).

        Returns:
            (observation, info) as described in the class docstring.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        for key in options:
            if key not in RESET_OPTIONS:
                raise unknown_name_error("PushT reset option", key, RESET_OPTIONS)
        requested = options.get("reset_to_state")
        state = sample_initial_state(self.np_random) if requested is None else self._checked_state(requested)
        self._set_state(state)
        return self._observation(), self._info()

    def step(self, action: Any):
        """Move the PD target to ``p_agent + 100 * action`` (action float (2,), units of 100 px) and simulate 0.1 s.

        Returns:
            (observation, reward, terminated=False, truncated=False, info).
        """
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,):
            raise WmlabError(f"PushT takes a relative action of shape (2,) in units of 100 px; got {action.shape}")
        self._advance(ACTION_SCALE * action)
        info = self._info()
        reward = float(np.clip(info["coverage"] / COVERAGE_THRESHOLD, 0.0, 1.0))
        return self._observation(), reward, False, False, info

    def rollout(self, init_state: Any, actions: Any, render: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Replay relative actions from an exact state and record every frame and state (spec §3.5).

        Resets to ``init_state``, renders frame 0, then steps and renders after every action. Deterministic: the
        same inputs give the same outputs. The env is left in the final state.

        Args:
            init_state: (5,) or (7,) start state (px, rad, px/s).
            actions: (T, 2) relative actions **in px** (the stored ``rel_actions``, i.e. ``100 * a`` of
                :meth:`step`): each moves the PD target to ``p_agent + actions[t]``.
            render: False skips rendering (frames is None): planners that only need states run ~10x faster.

        Returns:
            frames (T+1, S, S, 3) uint8 (or None) and states (T+1, 5|7) float64, index 0 being ``init_state``.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != 2 or not np.isfinite(actions).all():
            raise WmlabError(f"rollout takes finite relative actions of shape (T, 2) in px; got shape {actions.shape}")
        self._set_state(self._checked_state(init_state))
        n = len(actions) + 1
        frames = np.empty((n, self.image_size, self.image_size, 3), dtype=np.uint8) if render else None
        states = np.empty((n, self.state_dim), dtype=np.float64)
        states[0] = self.state()
        if frames is not None:
            frames[0] = self.render()
        for t, rel in enumerate(actions, start=1):
            self._advance(rel)
            states[t] = self.state()
            if frames is not None:
                frames[t] = self.render()
        return frames, states

    def close(self) -> None:
        self._sim.close()
