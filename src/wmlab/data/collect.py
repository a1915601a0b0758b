"""Scripted, noisy, contact-rich PushT data, written to an episode store.

The policy picks a point on the T's outline, approaches it from outside along a direction close to the inward
normal (going round the block via an offset corner when the straight path would cross it), pushes for a random
length with noisy velocity, and sometimes wanders. Episode i depends on (seed, i) alone, so collection runs in
worker processes, resumes after the last committed episode (even after SIGKILL) and reproduces the same data.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.data.summary import block_moved
from wmlab.data.trajectories import EpisodeStore
from wmlab.envs.pusht_geometry import AGENT_RADIUS, agent_block_distance, block_vertices, sample_initial_state
from wmlab.errors import WmlabError
from wmlab.locks import exclusive_writer
from wmlab.progress import progress_bar, say

POLICY_VERSION = "noisy-push@1"
TARGET_LOW, TARGET_HIGH = 15.0, 497.0  # PD targets stay inside the arena


@dataclass(frozen=True)
class CollectConfig:
    """Args: episodes N, seed, image_size S, min/max episode length, val_fraction of episodes."""

    episodes: int
    seed: int = 0
    image_size: int = 96
    min_length: int = 50
    max_length: int = 250
    val_fraction: float = 0.1


class NoisyPushPolicy:
    """The scripted pushing policy: ``policy(state) -> relative action in px`` (2,), state (5,).

    A push is a generator that yields actions and receives the next observed state, so each phase re-plans from
    where the agent really is.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._plan: Iterator[np.ndarray] | None = None

    def __call__(self, state: np.ndarray) -> np.ndarray:
        if agent_block_distance(state) < AGENT_RADIUS - 4:
            # the block is stuck (at a wall) and the kinematic agent cuts into it: back off and plan anew
            self._plan = None
            away = state[:2] - block_vertices(state[2:5]).mean(0)
            return 20 * away / max(np.linalg.norm(away), 1e-9)
        while True:
            try:
                if self._plan is None:
                    self._plan = self._push(state)
                    return next(self._plan)  # every push yields at least one approach step
                return self._plan.send(state)
            except StopIteration:
                self._plan = None

    def _contact_point(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A point uniform over the T's outline and its inward normal."""
        outline = block_vertices(state[2:5])  # (8, 2)
        edges = np.roll(outline, -1, axis=0) - outline
        lengths = np.linalg.norm(edges, axis=1)
        edge = self.rng.choice(8, p=lengths / lengths.sum())
        point = outline[edge] + self.rng.uniform() * edges[edge]
        signed_area = 0.5 * np.sum(
            outline[:, 0] * np.roll(outline[:, 1], -1) - np.roll(outline[:, 0], -1) * outline[:, 1]
        )
        tangent = edges[edge] / lengths[edge]
        outward = np.array([tangent[1], -tangent[0]]) * np.sign(signed_area)
        return point, -outward

    def _blocked(self, state: np.ndarray, goal: np.ndarray) -> bool:
        """Whether moving the agent straight to ``goal`` would run it through the block."""
        path = state[None, :2] + np.linspace(0, 1, 12)[:, None] * (goal - state[:2])[None]
        probe = np.concatenate([path, np.repeat(state[None, 2:5], len(path), 0)], 1)
        return bool((agent_block_distance(probe)[1:] < AGENT_RADIUS + 1).any())

    def _detour(self, state: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The outward-offset corner of the T that is free to reach and closest to the goal."""
        outline = block_vertices(state[2:5])
        centre = outline.mean(0)
        corners = outline + 40 * (outline - centre) / np.linalg.norm(outline - centre, axis=1, keepdims=True)
        free = [c for c in corners if not self._blocked(state, c)]
        candidates = free or list(corners)
        return min(candidates, key=lambda c: np.linalg.norm(c - goal))

    def _push(self, state: np.ndarray) -> Iterator[np.ndarray]:
        rng = self.rng
        # the nearest of three uniform contact points: shorter approaches make the data contact-rich
        candidates = [self._contact_point(state) for _ in range(3)]
        point, normal = min(candidates, key=lambda c: np.linalg.norm(c[0] - state[:2]))
        angle = np.deg2rad(rng.uniform(-30, 30))
        direction = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ normal
        waypoint = point - (AGENT_RADIUS + 10) * direction
        length = rng.uniform(40, 160)
        for _ in range(40):  # approach, re-planned every step; abandoned if it takes too long
            state = yield self._toward(state, waypoint)
            if np.linalg.norm(state[:2] - waypoint) < 5:
                break
        else:
            return
        covered = 0.0
        while covered < length:
            speed = rng.uniform(8, 25)
            state = yield speed * direction + rng.normal(0, 4, 2)
            covered += speed

        if rng.uniform() < 0.1:
            for _ in range(rng.integers(3, 11)):
                state = yield rng.normal(0, 20, 2)

    def _toward(self, state: np.ndarray, goal: np.ndarray) -> np.ndarray:
        target = self._detour(state, goal) if self._blocked(state, goal) else goal
        step = target - state[:2]
        distance = np.linalg.norm(step)
        size = min(distance, self.rng.uniform(25, 45))
        return step / max(distance, 1e-9) * size


def generate_episode(config: CollectConfig, index: int) -> dict[str, Any]:
    """Episode ``index``: arrays (T, ...) and its contact count. Depends on (seed, index) only."""
    from wmlab.envs.pusht import PushT

    rng = np.random.default_rng([config.seed, index])
    length = int(rng.integers(config.min_length, config.max_length + 1))
    env = PushT(obs="both", image_size=config.image_size, with_velocity=True)
    obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"reset_to_state": sample_initial_state(rng)})
    policy = NoisyPushPolicy(rng)
    record: dict[str, list] = {k: [] for k in ("images", "states", "velocities", "rel_actions", "abs_actions")}
    contacts = 0
    for _ in range(length):
        state = obs["state"]
        rel = np.asarray(policy(state[:5]), np.float64)
        target = np.clip(state[:2] + rel, TARGET_LOW, TARGET_HIGH)
        rel = target - state[:2]
        record["images"].append(obs["image"])
        record["states"].append(state[:5])
        record["velocities"].append(state[5:7])
        record["rel_actions"].append(rel)
        record["abs_actions"].append(target)
        obs, _, _, _, info = env.step(rel / 100.0)
        contacts += int(info["n_agent_contacts"] > 0)
    env.close()
    episode = {k: np.stack(v) for k, v in record.items()}
    return {"episode": episode, "contacts": contacts, "moved": block_moved(episode["states"])}


def _generate(args: tuple[CollectConfig, int]) -> dict[str, Any]:
    return generate_episode(*args)


def split_of(config: CollectConfig) -> np.ndarray:
    """(N,) split names: a seeded permutation puts ``val_fraction`` of the episodes in ``val``."""
    n_val = int(round(config.val_fraction * config.episodes))
    order = np.random.default_rng([config.seed, 2**20]).permutation(config.episodes)
    splits = np.array(["train"] * config.episodes, dtype=object)
    splits[order[:n_val]] = "val"
    return splits


def collect_pusht(config: CollectConfig, out: str | Path, workers: int = 1, show_progress: bool = True) -> EpisodeStore:
    """Generate ``config.episodes`` episodes into ``out``; re-running the same command resumes. Another process
    writing ``out`` at the same time is refused (:mod:`wmlab.locks`)."""
    with exclusive_writer(out, "dataset"):
        return _collect_pusht(config, Path(out), workers, show_progress)


def _collect_pusht(config: CollectConfig, out: Path, workers: int, show_progress: bool) -> EpisodeStore:
    attrs = {
        "origin": f"generated:{POLICY_VERSION}",
        "collect": config.__dict__,
        "action_scale": 100,
        "k_p": 100,
        "k_v": 20,
        "control_hz": 10,
        "physics_hz": 100,
        "with_target": True,
    }
    if (out / "zarr.json").exists():
        store = EpisodeStore.resume(out)
        if store.attrs.get("collect") != config.__dict__:
            raise WmlabError(
                f"{out} holds a collection with other settings ({store.attrs.get('collect')}); "
                "use the same options to resume, or another --out"
            )
    else:
        store = EpisodeStore.create(out, config.image_size, attrs)
    splits = split_of(config)
    done = store.num_episodes
    say(
        f"collect pusht: {config.episodes} episodes ({config.image_size} px, seed {config.seed}) into {out}: "
        + (f"resuming after {done} committed episodes" if done else "fresh dataset"),
        show_progress,
    )
    # running totals, committed with each episode (stores from before the commit record kept them in attrs)
    totals = {"contacts": store.attrs.get("_contacts", 0), "moved": store.attrs.get("_moved", 0)}
    totals |= store.committed["extra"]
    contacts, moved, steps = int(totals["contacts"]), int(totals["moved"]), store.committed["rows"]
    tasks = [(config, i) for i in range(done, config.episodes)]
    pool = multiprocessing.get_context("forkserver").Pool(workers) if workers > 1 else None
    results = pool.imap(_generate, tasks) if pool else map(_generate, tasks)
    try:
        with progress_bar("collect pusht", config.episodes, "episodes", show_progress) as advance:
            advance(done)
            for (_, index), result in zip(tasks, results):
                contacts, moved = contacts + result["contacts"], moved + int(result["moved"])
                steps += len(result["episode"]["images"])
                # one commit for the episode and the totals: a kill cannot count an episode twice or not at all
                store.append_episode(
                    result["episode"], str(splits[index]), extra={"contacts": contacts, "moved": moved}
                )
                advance(1, contact=contacts / steps, moved=moved / store.num_episodes)
    finally:
        if pool:
            pool.terminate()
    store.finalize({"contact_fraction": contacts / steps, "block_moved_fraction": moved / config.episodes})
    return store
