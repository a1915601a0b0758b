"""PushT geometry: arena, the T block's outline, overlap tests and the initial-state sampler (spec §3.1, §4.3).

Pure numpy, so that success rules, samplers and data tools work without pygame / pymunk. The numbers mirror
gym-pusht 0.1.8 (``PushTEnv._setup`` and ``add_tee``); tests/envs/test_pusht.py checks them against its objects.

Poses are ``(x, y, theta)`` of the block body's reference point (not its centre of gravity) in pixels of the
512 x 512 simulator frame (y points down, as pygame draws it), angles in radians. A local point ``v`` of the T lies
at ``(x, y) + R(theta) v`` in the world, ``R`` the usual counter-clockwise rotation matrix.

    rng = np.random.default_rng(0)
    s = sample_initial_state(rng)              # (5,) [agent_x, agent_y, block_x, block_y, block_angle]
    block_vertices(s[2:5])                     # (8, 2) outline of the T
"""

from __future__ import annotations

import numpy as np

from wmlab.errors import WmlabError

ARENA_SIZE = 512  # the simulator canvas is 512 x 512 px
WALL_COORD = (5.0, 506.0)  # static wall segments run along x = 5, x = 506, y = 5 and y = 506 ...
WALL_RADIUS = 2.0  # ... with this radius, so the free interior is [7, 504]^2
ARENA_INTERIOR = (WALL_COORD[0] + WALL_RADIUS, WALL_COORD[1] - WALL_RADIUS)
AGENT_RADIUS = 15.0
BLOCK_MASS = 1.0
# The T as two axis-aligned rectangles in the block's local frame, rows (x_min, y_min, x_max, y_max):
# a 120 x 30 bar with the reference point at the middle of one long side, and a 30 x 90 stem.
T_RECTS = np.array([[-60.0, 0.0, 60.0, 30.0], [-15.0, 30.0, 15.0, 120.0]])
# The same T as one 8-vertex outline (the two rectangles only share an edge, so areas agree): (8, 2).
T_OUTLINE = np.array(
    [[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [15.0, 30.0], [15.0, 120.0], [-15.0, 120.0], [-15.0, 30.0], [-60.0, 30.0]]
)
T_AREA = 120.0 * 30.0 + 30.0 * 90.0
GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])  # gym-pusht's fixed goal marker (x, y, theta)
# Initial-state ranges of the reference's random sampler (spec §4.3): agent in [50, 450)^2, block in [100, 400)^2.
AGENT_INIT_RANGE = (50.0, 450.0)
BLOCK_INIT_RANGE = (100.0, 400.0)


def wrap_angle(delta: np.ndarray | float) -> np.ndarray:
    """``((delta + pi) mod 2 pi) - pi``: an angle difference mapped into [-pi, pi). Elementwise, any shape."""
    return np.mod(np.asarray(delta, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi


def reduce_angle(angle: np.ndarray | float) -> np.ndarray:
    """An angle reduced to [0, 2 pi). Elementwise, any shape.

    ``np.mod`` alone returns 2 pi for tiny negative inputs (rounding); those map to 0 so the range is half-open.
    """
    reduced = np.mod(np.asarray(angle, dtype=np.float64), 2 * np.pi)
    return np.where(reduced >= 2 * np.pi, 0.0, reduced)


def as_poses(poses: np.ndarray | list, what: str = "poses") -> np.ndarray:
    """``poses`` as a float64 array (..., 3); a :class:`WmlabError` names ``what`` when the shape is wrong."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim < 1 or poses.shape[-1] != 3:
        raise WmlabError(f"{what} must be block poses (..., 3) = (x, y, theta); got shape {poses.shape}")
    return poses


def as_states(states: np.ndarray | list, what: str = "states") -> np.ndarray:
    """``states`` as a float64 array (..., 5|7); a :class:`WmlabError` names ``what`` when the shape is wrong."""
    states = np.asarray(states, dtype=np.float64)
    if states.ndim < 1 or states.shape[-1] not in (5, 7):
        raise WmlabError(
            f"{what} must be PushT states (..., 5) = [agent_x, agent_y, block_x, block_y, block_angle] "
            f"or (..., 7) with the agent velocity appended; got shape {states.shape}"
        )
    return states


def block_vertices(poses: np.ndarray | list) -> np.ndarray:
    """World coordinates of the T outline.

    Args:
        poses: block poses (..., 3) = (x, y, theta).

    Returns:
        (..., 8, 2) vertices in px, in the order of :data:`T_OUTLINE`.
    """
    poses = as_poses(poses, "poses")
    cos, sin = np.cos(poses[..., 2:3]), np.sin(poses[..., 2:3])
    lx, ly = T_OUTLINE[:, 0], T_OUTLINE[:, 1]
    x = poses[..., 0:1] + cos * lx - sin * ly
    y = poses[..., 1:2] + sin * lx + cos * ly
    return np.stack([x, y], axis=-1)


def agent_block_distance(states: np.ndarray | list) -> np.ndarray:
    """Distance from the agent's centre to the T (0 when the centre lies inside it).

    Exact for the pymunk shapes (polygons with zero radius): the agent centre is moved into the block frame and
    its distance to each of the two rectangles is taken.

    Args:
        states: (..., 5 or 7) PushT states.

    Returns:
        (...,) distances in px.
    """
    states = as_states(states, "states")
    dx, dy = states[..., 0] - states[..., 2], states[..., 1] - states[..., 3]
    cos, sin = np.cos(states[..., 4]), np.sin(states[..., 4])
    lx, ly = cos * dx + sin * dy, -sin * dx + cos * dy  # R(theta)^T (agent - block)
    lx, ly = lx[..., None], ly[..., None]
    ex = np.maximum(np.maximum(T_RECTS[:, 0] - lx, lx - T_RECTS[:, 2]), 0.0)
    ey = np.maximum(np.maximum(T_RECTS[:, 1] - ly, ly - T_RECTS[:, 3]), 0.0)
    return np.hypot(ex, ey).min(axis=-1)


def agent_block_overlap(states: np.ndarray | list) -> np.ndarray:
    """Whether the agent's disc (radius 15 px) intersects or touches the T. (..., 5|7) states -> (...,) bool."""
    return agent_block_distance(states) <= AGENT_RADIUS


def block_inside_arena(poses: np.ndarray | list) -> np.ndarray:
    """Whether the whole T lies strictly inside the walls' free interior. (..., 3) poses -> (...,) bool."""
    vertices = block_vertices(poses)
    low, high = ARENA_INTERIOR
    return ((vertices > low) & (vertices < high)).all(axis=(-2, -1))


def sample_initial_state(rng: np.random.Generator, max_tries: int = 10_000) -> np.ndarray:
    """A random non-overlapping initial state (spec §4.3).

    Agent ~ U[50, 450)^2, block ~ U[100, 400)^2, angle ~ U[0, 2 pi), redrawn until the agent does not touch the T
    and the T lies inside the walls. The reference's sampler draws integer positions and rejects nothing; here
    positions are continuous and overlapping draws are rejected, since a penetrating start makes the first physics
    step throw the block around. Deterministic given ``rng``.

    Args:
        rng: the generator all draws come from.
        max_tries: give up (a bug, never expected: about 1 in 8 draws is rejected) after this many draws.

    Returns:
        (5,) float64 ``[agent_x, agent_y, block_x, block_y, block_angle]``.
    """
    for _ in range(max_tries):
        agent = rng.uniform(*AGENT_INIT_RANGE, size=2)
        block = rng.uniform(*BLOCK_INIT_RANGE, size=2)
        angle = rng.uniform(0.0, 2 * np.pi)
        state = np.array([agent[0], agent[1], block[0], block[1], angle])
        if not agent_block_overlap(state) and block_inside_arena(state[2:5]):
            return state
    raise WmlabError(f"no non-overlapping PushT state found in {max_tries} draws; this is a bug, please report it")
