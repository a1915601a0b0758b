"""PushT goal-reaching targets, outcomes and the calibration rows (spec/latent_actions.md §3.6, §9.1, §9.4, §9.5).

A target is (init state, goal state, init frame, goal frame), built by replaying ``goal_horizon * frameskip`` recorded
actions of a validation segment in the simulator, so goals are reachable by construction. The target set of a
(dataset, seed, n, horizon) is saved under ``<dataset>/targets/`` and reused, so every variant and planner is
evaluated on identical targets.

    targets = load_or_sample_targets(store, evals=100, seed=0)
    outcome = outcomes(targets.goal_states, final_states)      # per-instance success under both rules, distances
    row = summarize(outcome)                                   # rates with Wilson 95 % intervals
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.atomic import atomic_write_bytes
from wmlab.data.trajectories import EpisodeStore
from wmlab.envs.pusht import PushT
from wmlab.envs.pusht_success import state_errors, success_coverage, success_state
from wmlab.errors import WmlabError
from wmlab.progress import progress_bar


@dataclass
class Targets:
    """n goal-reaching instances. Shapes: episodes, offsets (n,); init_states, goal_states (n, 5); actions (n, L, 2)
    in px (the recorded segment, L = goal_horizon * frameskip); init_frames, goal_frames (n, S, S, 3) uint8."""

    episodes: np.ndarray
    offsets: np.ndarray
    init_states: np.ndarray
    goal_states: np.ndarray
    actions: np.ndarray
    init_frames: np.ndarray
    goal_frames: np.ndarray

    def __len__(self) -> int:
        return len(self.episodes)

    def subset(self, index: slice | np.ndarray) -> Targets:
        return Targets(**{k: v[index] for k, v in vars(self).items()})

    def save(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **vars(self))
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Targets:
        with np.load(path) as data:
            return cls(**{k: data[k] for k in data.files})


def sample_targets(
    store: EpisodeStore,
    evals: int,
    seed: int = 0,
    frameskip: int = 5,
    goal_horizon: int = 5,
    show_progress: bool = True,
) -> Targets:
    """Draw ``evals`` targets from validation segments (spec §9.1) with ``numpy.random.default_rng(seed)``.

    An episode is drawn uniformly (redrawn until it has at least ``frameskip * goal_horizon + 1`` frames), then an
    offset o uniformly in [0, T - L - 1]; the L recorded actions are replayed from state o in the simulator.
    """
    length = frameskip * goal_horizon
    episodes = store.episode_indices("val")
    lengths = store.lengths[episodes]
    if not len(episodes) or lengths.max() < length + 1:
        raise WmlabError(
            f"{store.path} has no validation episode with {length + 1} frames for goals {goal_horizon} macro steps "
            f"away at frameskip {frameskip}; collect longer episodes or lower the goal horizon"
        )
    rng = np.random.default_rng(seed)
    env = PushT(obs="both", image_size=store.image_size)
    rows: dict[str, list] = {k: [] for k in ("episodes", "offsets", "init_states", "goal_states", "actions")}
    frames: dict[str, list] = {"init_frames": [], "goal_frames": []}
    rel = store.read("rel_actions")  # the whole arrays: small, and a damaged chunk gives one clear error here
    states = store.read("states")
    with progress_bar("replay goal segments", evals, "goals", show_progress) as bar:
        for _ in range(evals):
            while True:
                pick = int(rng.integers(len(episodes)))
                if lengths[pick] >= length + 1:
                    break
            episode = int(episodes[pick])
            begin, _ = store.bounds(episode)
            offset = int(rng.integers(0, int(lengths[pick]) - length))  # o in [0, T - L - 1]
            init = np.asarray(states[begin + offset], np.float64)[:5]
            actions = np.asarray(rel[begin + offset : begin + offset + length], np.float64)
            replay_frames, replay_states = env.rollout(init, actions)
            rows["episodes"].append(episode)
            rows["offsets"].append(offset)
            rows["init_states"].append(replay_states[0, :5])
            rows["goal_states"].append(replay_states[-1, :5])
            rows["actions"].append(actions)
            frames["init_frames"].append(replay_frames[0])
            frames["goal_frames"].append(replay_frames[-1])
            bar(1)
    env.close()
    return Targets(**{k: np.asarray(v) for k, v in {**rows, **frames}.items()})


def load_or_sample_targets(
    store: EpisodeStore,
    evals: int,
    seed: int = 0,
    frameskip: int = 5,
    goal_horizon: int = 5,
    show_progress: bool = True,
) -> tuple[Targets, Path]:
    """The saved target set of these settings under ``<dataset>/targets/`` (sampled and saved on first use)."""
    path = Path(store.path) / "targets" / f"val-seed{seed}-n{evals}-fs{frameskip}-h{goal_horizon}.npz"
    if path.exists():
        return Targets.load(path), path
    targets = sample_targets(store, evals, seed, frameskip, goal_horizon, show_progress)
    targets.save(path)
    return targets, path


def outcomes(goal_states: np.ndarray, final_states: np.ndarray) -> dict[str, np.ndarray]:
    """Per-instance outcomes (spec §3.6): success under the state and coverage rules and the distances.

    goal_states, final_states: (n, 5). Returns (n,) arrays.
    """
    out = {
        "success_state": success_state(goal_states, final_states),
        "success_coverage": success_coverage(goal_states, final_states),
    }
    out.update(state_errors(goal_states, final_states))
    return out


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(per_instance: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Success rates with Wilson intervals and mean distances over the instances (spec §9.4)."""
    row: dict[str, Any] = {"n": int(len(per_instance["success_state"]))}
    for rule in ("state", "coverage"):
        hits = np.asarray(per_instance[f"success_{rule}"], bool)
        row[f"success_{rule}"] = float(hits.mean())
        row[f"success_{rule}_ci95"] = list(wilson_interval(int(hits.sum()), len(hits)))
    for key in ("state_dist", "pos_err", "agent_pos_err", "block_pos_err", "angle_err_deg"):
        if key in per_instance:
            row[f"mean_{key}"] = float(np.mean(per_instance[key]))
    for key in ("wm_emb_l2", "wm_env_emb_l2", "seconds"):
        if key in per_instance:
            row[f"mean_{key}"] = float(np.mean(per_instance[key]))
    return row


def execute(targets: Targets, actions_px: np.ndarray, render: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
    """Run (n, L, 2) px actions from every target's init state. Returns frames (n, L+1, S, S, 3) or None and
    states (n, L+1, 5)."""
    env = PushT(obs="both" if render else "state", image_size=targets.init_frames.shape[1])
    frames, states = [], []
    for init, actions in zip(targets.init_states, actions_px):
        f, s = env.rollout(init, actions, render=render)
        frames.append(f)
        states.append(s[:, :5])
    env.close()
    return (np.stack(frames) if render else None), np.stack(states)


def calibration_rows(targets: Targets) -> dict[str, dict[str, Any]]:
    """The null-plan and replay rows of spec §9.5 on these targets.

    null: zero relative actions for the goal segment (the agent brakes and stays); replay: the recorded actions again
    from the init state, which must succeed everywhere under both rules (a determinism check of ``reset_to_state``).
    """
    rows = {}
    for name, actions in (("null", np.zeros_like(targets.actions)), ("replay", targets.actions)):
        _, states = execute(targets, actions)
        rows[name] = summarize(outcomes(targets.goal_states, states[:, -1]))
    return rows
