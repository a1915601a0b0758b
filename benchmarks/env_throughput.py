"""Environment throughput on this machine: steps/s for walker and ball_in_cup (state and pixels, one process and
vectorized), and the cost of a context switch at reset (wmlab's in-place edit vs. CARL's XML rebuild).

    python benchmarks/env_throughput.py [--steps 2000] [--out benchmarks/results/env_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from wmlab.atomic import atomic_write_text  # noqa: E402
from wmlab.envs import make, make_vector  # noqa: E402


def single_process(name: str, obs: str, steps: int) -> float:
    env = make(name, obs=obs, contexts="double_box", seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps,) + env.action_space.shape).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vectorized(name: str, obs: str, steps: int, num_envs: int) -> float:
    venv = make_vector(name, num_envs=num_envs, obs=obs, contexts="double_box", seed=0)
    try:
        venv.reset()
        rng = np.random.default_rng(0)
        batches = max(1, steps // num_envs)
        actions = rng.uniform(-1, 1, (batches,) + venv.action_space.shape).astype(np.float32)
        venv.step(actions[0])  # workers warm
        start = time.perf_counter()
        for action in actions:
            venv.step(action)
        return batches * num_envs / (time.perf_counter() - start)
    finally:
        venv.close()


def context_switch_ms(name: str, obs: str, resets: int = 50) -> dict[str, float]:
    """Mean reset time with the same context vs. a new context at every reset."""
    env = make(name, obs=obs, contexts="double_box", seed=0)
    env.reset()
    fixed = env.unwrapped.context
    start = time.perf_counter()
    for _ in range(resets):
        env.reset(options={"context": fixed})
    same = (time.perf_counter() - start) / resets
    start = time.perf_counter()
    for _ in range(resets):
        env.reset()  # the schedule picks the next training context
    switching = (time.perf_counter() - start) / resets
    return {
        "reset_same_context_ms": 1e3 * same,
        "reset_new_context_ms": 1e3 * switching,
        "switch_cost_ms": 1e3 * (switching - same),
    }


def carl_walker_switch_ms(resets: int = 20) -> float | None:
    """CARL's walker rebuilds the MuJoCo model from XML at each context switch: its reset time with switching."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from carl.envs import CARLDmcWalkerEnv
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    contexts = {
        i: {"gravity": float(g), "actuator_strength": float(s)}
        for i, (g, s) in enumerate(zip(rng.uniform(4.9, 14.7, resets), rng.uniform(0.5, 1.5, resets)))
    }
    env = CARLDmcWalkerEnv(contexts=contexts)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(resets):
        env.reset()
    return 1e3 * (time.perf_counter() - start) / resets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", default="benchmarks/results/env_throughput.json")
    args = parser.parse_args()
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "mujoco_gl": os.environ.get("MUJOCO_GL"),
        },
        "steps": args.steps,
        "steps_per_second": {},
        "context_switch": {},
    }
    for name in ("walker", "ball_in_cup"):
        for obs in ("state", "pixels"):
            steps = args.steps if obs == "state" else args.steps // 4
            row = {"single_process": single_process(name, obs, steps)}
            for n in (2, 4):
                row[f"vector_{n}_workers"] = vectorized(name, obs, steps, n)
            results["steps_per_second"][f"{name}/{obs}"] = row
            print(name, obs, {k: round(v, 1) for k, v in row.items()}, flush=True)
            results["context_switch"][f"{name}/{obs}"] = context_switch_ms(name, obs)
            print("  context switch", {k: round(v, 3) for k, v in results["context_switch"][f"{name}/{obs}"].items()})
    carl = carl_walker_switch_ms()
    if carl is not None:
        results["context_switch"]["carl_walker_state_reset_new_context_ms"] = carl
        print("CARL walker reset with a new context (XML rebuild):", round(carl, 2), "ms")
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
