"""PushT throughput on this machine: env steps/s with state-only observations and with pixels at 96 and 224 px
(spec/latent_actions.md §3.7), for wmlab's ``PushT`` and, for reference, gym-pusht's own env.

Each configuration steps one env for ``--seconds`` with random relative actions (N(0, 20 px) per axis, targets
clipped to the arena) and a random reset every 200 steps; only ``step`` calls are timed.

    python benchmarks/pusht_throughput.py [--seconds 3] [--out benchmarks/results/pusht_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.envs.pusht import PushT

EPISODE_STEPS = 200


def _timed_steps(reset, step, action_at, seconds: float) -> tuple[int, float]:
    """Call ``step(action_at(i))`` until ``seconds`` of step time have passed; returns (steps, step seconds)."""
    reset()
    steps, elapsed = 0, 0.0
    while elapsed < seconds:
        action = action_at(steps)
        start = time.perf_counter()
        step(action)
        elapsed += time.perf_counter() - start
        steps += 1
        if steps % EPISODE_STEPS == 0:
            reset()
    return steps, elapsed


def wmlab_pusht(obs: str, image_size: int, seconds: float) -> dict[str, float]:
    env = PushT(obs=obs, image_size=image_size, clip_target=True)
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.2, (4096, 2))  # units of 100 px
    steps, elapsed = _timed_steps(
        lambda: env.reset(seed=int(rng.integers(1 << 31))), env.step, lambda i: actions[i % len(actions)], seconds
    )
    return {"steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed}


def gym_pusht(obs_type: str, image_size: int, seconds: float) -> dict[str, float]:
    """gym-pusht 0.1.8's own env (absolute targets, legacy reset, coverage every step) for comparison."""
    from gym_pusht.envs import PushTEnv

    env = PushTEnv(obs_type=obs_type, observation_width=image_size, observation_height=image_size)
    rng = np.random.default_rng(0)
    offsets = rng.normal(0.0, 20.0, (4096, 2))

    def action_at(i: int) -> np.ndarray:
        return np.clip(np.array(env.agent.position) + offsets[i % len(offsets)], 15.0, 497.0)

    steps, elapsed = _timed_steps(lambda: env.reset(seed=int(rng.integers(1 << 31))), env.step, action_at, seconds)
    return {"steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed step seconds per configuration")
    parser.add_argument("--out", default="benchmarks/results/pusht_throughput.json")
    args = parser.parse_args()
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "seconds_per_configuration": args.seconds,
        "episode_steps": EPISODE_STEPS,
        "wmlab_pusht": {},
        "gym_pusht": {},
    }
    for name, obs, size in (("state", "state", 224), ("pixels_96", "both", 96), ("pixels_224", "both", 224)):
        results["wmlab_pusht"][name] = row = wmlab_pusht(obs, size, args.seconds)
        print(f"wmlab PushT {name}: {row['steps_per_second']:.0f} steps/s", flush=True)
    for name, obs_type, size in (("state", "state", 96), ("pixels_96", "pixels", 96), ("pixels_224", "pixels", 224)):
        results["gym_pusht"][name] = row = gym_pusht(obs_type, size, args.seconds)
        print(f"gym-pusht {name}: {row['steps_per_second']:.0f} steps/s", flush=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
