"""Does bf16 training keep a latent world model's numbers? fp32 and bf16 runs of the same seed, beside a second fp32
seed (the seed-to-seed noise the bf16 difference must stay within), then the validation metrics of each.

    python benchmarks/latent_precision_study.py --data DATASET --features dinov2-112 --preset cpu-pooled \
        --variant action --steps 2000 --root /root/wmlab_runs/bf16_fidelity/runs

Runs ``train.precision=fp32`` seed 0, ``bf16`` seed 0 and ``fp32`` seed 1 (``--jobs`` at a time, one thread each),
re-using finished runs (wmlab training resumes), then ``wmlab metrics`` on each. Writes
``benchmarks/results/latent_precision_<preset>_<variant>_<steps>steps.json``: per run its training speed (median
steps/s of the logged intervals), final training loss and the validation metrics with their 95% CIs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.runs import read_metrics

RUNS = (("fp32", 0), ("bf16", 0), ("fp32", 1))


def _train(args: argparse.Namespace, precision: str, seed: int) -> Path:
    run = Path(args.root) / f"{args.preset}-{args.variant}-{precision}-s{seed}"
    command = [
        sys.executable, "-m", "wmlab", "train", "latent", "--run", str(run), "--data", args.data,
        "--features", args.features, "--variant", args.variant, "--preset", args.preset, "--steps", str(args.steps),
        "--seed", str(seed), "--no-progress", f"train.precision={precision}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        [sys.executable, "-m", "wmlab", "metrics", str(run), "--rollouts", str(args.rollouts)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--features", default="dinov2-112")
    parser.add_argument("--preset", default="cpu-pooled")
    parser.add_argument("--variant", default="action")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", default="/root/wmlab_runs/bf16_fidelity/runs")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda r: _train(args, *r), RUNS))
    rows = []
    for (precision, seed), run in zip(RUNS, runs):
        records = read_metrics(run / "metrics.jsonl")
        speeds = [r["perf/steps_per_s"] for r in records if "perf/steps_per_s" in r]
        losses = [r["train/latent_pred_loss"] for r in records if "train/latent_pred_loss" in r]
        metrics = json.loads((run / "results" / "metrics.json").read_text())
        keep = ("latent_pred_error", "copy_error", "rollout_mse", "swap_score", "shuffle_delta")
        rows.append(
            {
                "run": str(run),
                "precision": precision,
                "seed": seed,
                "steps_per_s_median": float(np.median(speeds)),
                "final_train_loss": losses[-1],
                **{k: metrics[k] for k in keep if k in metrics},
            }
        )
    result = {
        "command": " ".join(sys.argv),
        "preset": args.preset,
        "variant": args.variant,
        "steps": args.steps,
        "data": args.data,
        "features": args.features,
        "rows": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "threads_per_run": 1,
            "runs_at_once": args.jobs,
        },
    }
    out = Path(f"benchmarks/results/latent_precision_{args.preset}_{args.variant}_{args.steps}steps.json")
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    for row in rows:
        error = row["latent_pred_error"]
        print(
            f"{row['precision']} seed {row['seed']}: {row['steps_per_s_median']:.2f} steps/s, prediction error "
            f"{error['mean']:.4f} [{error['ci_low']:.4f}, {error['ci_high']:.4f}], rollout "
            f"{row['rollout_mse']['mean']:.4f}, copy {row['copy_error']['mean']:.4f}"
        )
    print("wrote", out)


if __name__ == "__main__":
    main()
