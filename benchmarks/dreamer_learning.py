"""Dreamer learns: train on one task with a preset and record the learning curve.

    python benchmarks/dreamer_learning.py --env pendulum --preset tiny --steps 20000 --threshold -400
    python benchmarks/dreamer_learning.py --env cartpole --preset tiny --steps 50000 --threshold 400 --stop \
        behavior.replay_value_scale=0.3

Writes benchmarks/results/dreamer_<env>_<preset>.json: every episode's (env step, return), the mean of the last 10
episodes over time, the first env step where that mean crossed the threshold (null if never), wall time and the
machine. ``--stop`` ends the run as soon as the threshold is crossed (saves CPU time; the curve up to there is kept).
What each committed result shows, and why cartpole takes the replay value loss: benchmarks/results/dreamer_learning.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.train import train_dreamer
from wmlab.runs import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="pendulum")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--threshold", type=float, required=True, help="mean return of the last 10 episodes")
    parser.add_argument("--stop", action="store_true", help="stop once the threshold is crossed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--summarize-only",
        action="store_true",
        help="do not train: summarise the metrics of an existing --run (e.g. one that was stopped)",
    )
    parser.add_argument("--note", default=None, help="a note stored with the result")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args()
    overrides = [f"env.name={args.env}", f"train.steps={args.steps}", f"seed={args.seed}", *args.overrides]
    if args.stop:
        overrides.append(f"train.stop_return={args.threshold}")
    run = args.run or tempfile.mkdtemp(prefix=f"dreamer-{args.env}-")
    start = time.perf_counter()
    if args.summarize_only:
        records = read_metrics(os.path.join(run, "metrics.jsonl"))
        last = [r for r in records if "progress/updates" in r][-1]
        summary = {"env_steps": last["step"], "updates": int(last["progress/updates"])}
        wall = None
    else:
        cfg = build_config(DreamerConfig, "dreamer", args.preset, overrides=overrides)
        summary = train_dreamer(cfg, run, show_progress=True)
        wall = time.perf_counter() - start
    episodes = [
        (r["step"], r["episode/return"])
        for r in read_metrics(os.path.join(run, "metrics.jsonl"))
        if "episode/return" in r
    ]
    returns = np.array([ret for _, ret in episodes])
    last10 = [float(returns[max(0, i - 9) : i + 1].mean()) for i in range(len(returns))]
    crossed = next((episodes[i][0] for i, m in enumerate(last10) if i >= 9 and m >= args.threshold), None)
    result = {
        "env": args.env,
        "preset": args.preset,
        "seed": args.seed,
        "budget_env_steps": args.steps,
        "threshold_last10": args.threshold,
        "first_env_step_crossing": crossed,
        "passed": crossed is not None,
        "final_last10": last10[-1] if last10 else None,
        "env_steps": summary["env_steps"],
        "updates": summary["updates"],
        "wall_seconds": wall,
        "curve": [{"env_step": s, "return": r, "last10": m} for (s, r), m in zip(episodes, last10)],
        "command": "python benchmarks/dreamer_learning.py "
        + " ".join(
            [f"--env {args.env}", f"--preset {args.preset}", f"--steps {args.steps}", f"--threshold {args.threshold}"]
            + ([f"--seed {args.seed}"] if args.seed else [])
            + (["--stop"] if args.stop else [])
            + args.overrides
        ),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "note": args.note,
    }
    out = args.out or f"benchmarks/results/dreamer_{args.env}_{args.preset}.json"
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"{args.env}: crossed {args.threshold} at {crossed} env steps; final last-10 mean {result['final_last10']}")
    print("wrote", out)


if __name__ == "__main__":
    main()
