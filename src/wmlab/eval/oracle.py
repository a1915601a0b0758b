"""The oracle calibration row (spec/latent_actions.md §9.5): CEM with the PushT simulator itself as the dynamics.

The decision variables are the ``action`` variant's (H, fs * 2) normalised macro actions; every candidate is run in
the simulator from the target's init state and scored by its final distance to the goal state, in units of the
state rule's tolerances. On goals 5 macro steps away this must reach success(state) >= 0.9: it validates goals,
execution and the success rules independently of any learning.

    row = oracle_row(targets, action_mean, action_std, CEMConfig(samples=100, elites=10, iterations=5))
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmlab.atomic import atomic_write_text
from wmlab.data.trajectories import EpisodeStore
from wmlab.envs.pusht import PushT
from wmlab.envs.pusht_success import SUCCESS_ANGLE_RAD, SUCCESS_POS_PX, wrap_angle
from wmlab.eval.goals import Targets, calibration_rows, execute, load_or_sample_targets, outcomes, summarize
from wmlab.latent.decoder import denormalise_macro
from wmlab.planning import BoxSpace, CEMConfig, make_planner
from wmlab.progress import progress_bar


def goal_distance(goal_state: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Smooth oracle cost: squared position error over 20 px plus squared wrapped angle error over 20 degrees.

    goal_state (5,), states (N, 5) -> (N,); below 1 means both parts of the state rule hold (roughly).
    """
    pos = np.linalg.norm(states[:, :4] - goal_state[:4], axis=-1) / SUCCESS_POS_PX
    angle = np.abs(wrap_angle(states[:, 4] - goal_state[4])) / SUCCESS_ANGLE_RAD
    return pos**2 + angle**2


class SimulatorCost:
    """Cost function of one batch of targets: candidates (B, N, H, fs * 2) -> final goal distance (B, N)."""

    def __init__(self, targets: Targets, action_mean: np.ndarray, action_std: np.ndarray):
        self.targets, self.mean, self.std = targets, action_mean, action_std
        self.env = PushT(obs="state")

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        px = denormalise_macro(candidates.detach().cpu().numpy().astype(np.float64), self.mean, self.std)
        costs = np.empty(candidates.shape[:2])
        for b, (init, goal) in enumerate(zip(self.targets.init_states, self.targets.goal_states)):
            finals = np.stack([self.env.rollout(init, actions, render=False)[1][-1, :5] for actions in px[b]])
            costs[b] = goal_distance(goal, finals)
        return torch.as_tensor(costs, dtype=torch.float32)


def _oracle_chunk(args: tuple[Targets, np.ndarray, np.ndarray, CEMConfig, int, int, int]) -> dict[str, Any]:
    targets, mean, std, cem, horizon, frameskip, seed = args
    torch.set_num_threads(1)
    planner = make_planner("cem", BoxSpace(2 * frameskip), cem)
    generator = torch.Generator().manual_seed(seed)
    begin = time.perf_counter()
    plan = planner.plan(SimulatorCost(targets, mean, std), len(targets), horizon, generator).plan
    seconds = (time.perf_counter() - begin) / len(targets)
    _, states = execute(targets, denormalise_macro(plan.numpy().astype(np.float64), mean, std))
    record = outcomes(targets.goal_states, states[:, -1])
    record["seconds"] = np.full(len(targets), seconds)
    return record


def oracle_row(
    targets: Targets,
    action_mean: np.ndarray,
    action_std: np.ndarray,
    cem: CEMConfig,
    horizon: int = 5,
    frameskip: int = 5,
    seed: int = 0,
    workers: int = 1,
    chunk: int = 5,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Open-loop CEM in the simulator on every target; the summary row of §9.4 plus per-instance outcomes.

    ``workers`` processes plan chunks of ``chunk`` targets in parallel; chunk k uses generator seed (seed, k).
    """
    mean, std = np.asarray(action_mean, np.float64), np.asarray(action_std, np.float64)
    jobs = [
        (targets.subset(slice(s, s + chunk)), mean, std, cem, horizon, frameskip, seed * 1_000_003 + s)
        for s in range(0, len(targets), chunk)
    ]
    records = []
    with progress_bar("oracle CEM in the simulator", len(targets), "goals", show_progress) as bar:
        if workers <= 1:
            results = map(_oracle_chunk, jobs)
            for record in results:
                records.append(record)
                bar(
                    len(record["seconds"]),
                    success=float(np.mean(np.concatenate([r["success_state"] for r in records]))),
                )
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
                for record in pool.map(_oracle_chunk, jobs):
                    records.append(record)
                    bar(len(record["seconds"]))
    merged = {k: np.concatenate([r[k] for r in records]) for k in records[0]}
    row = summarize(merged)
    row["planner"] = {"name": "cem", **vars(cem), "horizon": horizon, "dynamics": "PushT simulator"}
    return {"row": row, "per_instance": {k: v.tolist() for k, v in merged.items()}}


def oracle_study(
    data: str | Path, evals: int, seed: int, cem: CEMConfig, workers: int = 1, out: str | Path | None = None
) -> tuple[dict[str, Any], Path]:
    """``wmlab plan-oracle``: the oracle row and the null / replay rows on the dataset's saved targets, written to
    ``out`` (default ``DATA/targets/oracle-seed<k>-n<evals>-N<N>k<k>i<I>s<sigma0>.json``). Returns (result, path)."""
    store = EpisodeStore.open(data)
    targets, targets_path = load_or_sample_targets(store, evals, seed)
    stats = store.attrs["statistics"]
    result = oracle_row(
        targets, np.asarray(stats["action_mean"]), np.asarray(stats["action_std"]), cem, seed=seed, workers=workers
    )
    result["calibration"] = calibration_rows(targets)
    result["targets"] = str(targets_path)
    name = f"oracle-seed{seed}-n{evals}-N{cem.samples}k{cem.elites}i{cem.iterations}s{cem.var_scale:g}.json"
    path = Path(out) if out is not None else Path(data) / "targets" / name
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    return result, path
