"""Reduced-scale zero-shot study on the 2-core CPU (issue 3/8): variants x seeds on one fast task, trained on
``double_box`` contexts, evaluated on the full grid, normalised by experts and the random policy, reported.

    python benchmarks/zero_shot_study.py --env pendulum --steps 6000 --seeds 0,1,2 --episodes 5 --workers 2

The variants are trained and grid-evaluated first, then the experts and the random baseline. Every stage reuses
what exists under ``--root`` (runs resume, finished runs and evaluations are skipped), so the
study can be stopped and continued. The report goes to benchmarks/results/zero_shot_<env>/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wmlab.analysis.zero_shot_report import zero_shot_report
from wmlab.config import build_config
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.train import train_dreamer
from wmlab.errors import WmlabError
from wmlab.eval.experts import build_expert_table, train_experts
from wmlab.eval.zero_shot import evaluate_grid, grid_records
from wmlab.runs import Checkpointer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="pendulum")
    parser.add_argument("--variants", default="dreamer,crssm-d,dali-s,dali-d")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--expert-seeds", default="0")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=6000, help="env steps per run and per expert")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per grid context")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--root", default="runs/zero_shot_study")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.root) / args.env
    seeds = [int(s) for s in args.seeds.split(",")]
    expert_seeds = [int(s) for s in args.expert_seeds.split(",")]
    runs = []
    for seed in seeds:  # seed-major: every variant of a seed before the next seed
        for variant in args.variants.split(","):
            run = root / f"{variant}-s{seed}"
            overrides = [
                f"variant={variant}",
                f"seed={seed}",
                f"env.name={args.env}",
                f"train.steps={args.steps}",
                "env.train_contexts=double_box",
            ]
            cfg = build_config(DreamerConfig, "dreamer", args.preset, overrides=overrides)
            paths = Checkpointer(run / "checkpoints").paths()
            if not paths or int(paths[-1].stem[5:]) < args.steps:
                train_dreamer(cfg, run)
            try:
                done = len(grid_records(run)) and grid_records(run)[0]["checkpoint_step"] >= args.steps
            except WmlabError:
                done = False
            if not done:
                evaluate_grid(run, args.episodes, args.workers, show_progress=True)
            runs.append(run)
    train_experts(args.env, root / "experts", expert_seeds, args.preset, args.steps)
    table_path = root / "experts" / args.env / "experts.json"
    if not table_path.exists():
        build_expert_table(args.env, root / "experts", expert_seeds, args.episodes, args.workers)
    out = args.out or f"benchmarks/results/zero_shot_{args.env}"
    zero_shot_report(runs, table_path, out, args.reps)
    print("wrote", out)


if __name__ == "__main__":
    main()
