"""PushT success rules and goal distances (spec §3.6), as pure functions vectorised over a batch.

Results are always reported under both rules:

- ``success(state)``, DINO-WM's rule: ``||g[0:4] - s[0:4]|| < 20 px`` (agent and block positions jointly) and
  ``|wrap(g[4] - s[4])| < pi/9``. The reference takes ``min(|d|, 2 pi - |d|)``, which is wrong once ``|d| > 2 pi``
  (unreduced angles); here ``wrap(d) = ((d + pi) mod 2 pi) - pi``.
- ``success(coverage)``, gym-pusht's rule: the area of the goal T covered by the block's T, divided by the goal T's
  area, above 0.95. Computed on shapely polygons like gym-pusht; the agent is ignored.

    success_state(goal, states)        # goal (5,), states (B, 5) -> (B,) bool
    success_coverage(goal, states)     # idem
    state_errors(goal, states)         # dict of (B,) arrays: state_dist, pos_err, agent_pos_err, ...

All functions broadcast ``goal`` against ``state`` over the leading dimensions; 7-d states (velocity appended)
are accepted and their velocity ignored.
"""

from __future__ import annotations

import numpy as np
import shapely

from wmlab.envs.pusht_geometry import as_poses, as_states, block_vertices, wrap_angle

SUCCESS_POS_PX = 20.0  # DINO-WM state rule: joint agent + block position error below this
SUCCESS_ANGLE_RAD = np.pi / 9  # ... and wrapped block angle error below 20 degrees
COVERAGE_THRESHOLD = 0.95  # gym-pusht: success when coverage exceeds this


def coverage(goal_block: np.ndarray | list, block: np.ndarray | list) -> np.ndarray:
    """Fraction of the goal T's area covered by the block's T (gym-pusht's coverage).

    Args:
        goal_block: goal block poses (..., 3) = (x, y, theta).
        block: block poses (..., 3), broadcast against ``goal_block``.

    Returns:
        (...,) float64 in [0, 1].
    """
    goal_block, block = np.broadcast_arrays(as_poses(goal_block, "goal_block"), as_poses(block, "block"))
    goal_polygons = shapely.polygons(block_vertices(goal_block))
    block_polygons = shapely.polygons(block_vertices(block))
    overlap = shapely.area(shapely.intersection(goal_polygons, block_polygons))
    return np.asarray(overlap / shapely.area(goal_polygons), dtype=np.float64)


def success_coverage(
    goal_state: np.ndarray | list, state: np.ndarray | list, threshold: float = COVERAGE_THRESHOLD
) -> np.ndarray:
    """gym-pusht's rule: coverage of the goal state's block pose by the state's block pose > ``threshold``.

    Args:
        goal_state: (..., 5|7) goal states.
        state: (..., 5|7) states, broadcast against ``goal_state``.
        threshold: coverage needed (0.95 in gym-pusht).

    Returns:
        (...,) bool.
    """
    goal_state, state = as_states(goal_state, "goal_state"), as_states(state, "state")
    return coverage(goal_state[..., 2:5], state[..., 2:5]) > threshold


def success_state(
    goal_state: np.ndarray | list,
    state: np.ndarray | list,
    pos_tol: float = SUCCESS_POS_PX,
    angle_tol: float = SUCCESS_ANGLE_RAD,
) -> np.ndarray:
    """DINO-WM's state rule with proper angle wrapping: joint position error < ``pos_tol`` and angle error <
    ``angle_tol``.

    Args:
        goal_state: (..., 5|7) goal states.
        state: (..., 5|7) states, broadcast against ``goal_state``.
        pos_tol: bound on ``||g[0:4] - s[0:4]||`` in px.
        angle_tol: bound on ``|wrap(g[4] - s[4])|`` in rad.

    Returns:
        (...,) bool.
    """
    goal_state, state = as_states(goal_state, "goal_state"), as_states(state, "state")
    diff = goal_state[..., :5] - state[..., :5]
    pos_err = np.linalg.norm(diff[..., 0:4], axis=-1)
    angle_err = np.abs(wrap_angle(diff[..., 4]))
    return (pos_err < pos_tol) & (angle_err < angle_tol)


def state_errors(goal_state: np.ndarray | list, state: np.ndarray | list) -> dict[str, np.ndarray]:
    """The distances reported next to the success rates (spec §3.6).

    Args:
        goal_state: (..., 5|7) goal states.
        state: (..., 5|7) states, broadcast against ``goal_state``.

    Returns:
        dict of (...,) float64 arrays:
        ``state_dist`` (||g - s|| over the 5-d state with the raw angle, as the reference reports it),
        ``pos_err`` (joint agent + block position error, px, the state rule's),
        ``agent_pos_err`` and ``block_pos_err`` (px),
        ``angle_err_deg`` (|wrap(g[4] - s[4])| in degrees).
    """
    goal_state, state = as_states(goal_state, "goal_state"), as_states(state, "state")
    diff = goal_state[..., :5] - state[..., :5]
    return {
        "state_dist": np.linalg.norm(diff, axis=-1),
        "pos_err": np.linalg.norm(diff[..., 0:4], axis=-1),
        "agent_pos_err": np.linalg.norm(diff[..., 0:2], axis=-1),
        "block_pos_err": np.linalg.norm(diff[..., 2:4], axis=-1),
        "angle_err_deg": np.rad2deg(np.abs(wrap_angle(diff[..., 4]))),
    }
