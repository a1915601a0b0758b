"""Reduced-scale zero-shot study on the 2-core CPU (issue 3/8): variants x seeds on one fast task, trained on
``double_box`` contexts, evaluated on the full grid, normalised by experts and the random policy, reported.

    python benchmarks/zero_shot_study.py --env pendulum --steps 6000 --seeds 0,1,2 --episodes 5 \
        --experts corners --jobs 2 --root /root/wmlab_runs/zero_shot_study

Every run (a variant x seed, or an expert) is one job; ``--jobs`` runs that many at a time, each in its own
process with ``--threads`` torch threads (two 1-thread jobs use a 2-core CPU better than one 2-thread job for
the small presets). A variant run is grid-evaluated right after it trains. Every stage reuses what exists under
``--root`` (runs resume, finished runs and evaluations are skipped), so the study can be stopped and continued.
The report goes to benchmarks/results/zero_shot_<env>/.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from wmlab.analysis.zero_shot_report import zero_shot_report
from wmlab.config import build_config
from wmlab.dreamer.config import DreamerConfig
from wmlab.envs.contexts import expert_contexts
from wmlab.eval.experts import MAX_RETURN_EXPERTS, build_expert_table, expert_run_dir
from wmlab.eval.zero_shot import grid_evaluated, train_and_grid_evaluate, trained_to


def run_job(cfg: DreamerConfig, run: Path, grid_episodes: int, threads: int) -> str:
    """Train ``run`` to its budget (resuming), then grid-evaluate it when ``grid_episodes`` > 0."""
    import torch

    from wmlab.dreamer.train import train_dreamer

    torch.set_num_threads(threads)
    start = time.time()
    if grid_episodes:
        train_and_grid_evaluate(cfg, run, grid_episodes)
    elif trained_to(run) < cfg.train.steps:
        train_dreamer(cfg, run, show_progress=False)
    return f"{run} done in {time.time() - start:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="pendulum")
    parser.add_argument("--variants", default="dreamer,crssm-d,dali-s,dali-d")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--expert-seeds", default="0")
    parser.add_argument("--experts", default="all", help="expert contexts: all (spec §9.2) or corners (reduced)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=6000, help="env steps per run and per expert")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per grid / expert context")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--root", default="runs/zero_shot_study")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.root) / args.env
    seeds = [int(s) for s in args.seeds.split(",")]
    expert_seeds = [int(s) for s in args.expert_seeds.split(",")]
    common = [f"env.name={args.env}", f"train.steps={args.steps}"]
    jobs, runs = [], []
    for seed in seeds:  # seed-major: every variant of a seed before the next seed
        for variant in args.variants.split(","):
            run = root / f"{variant}-s{seed}"
            overrides = [*common, f"variant={variant}", f"seed={seed}", "env.train_contexts=double_box"]
            jobs.append((build_config(DreamerConfig, "dreamer", args.preset, overrides=overrides), run, args.episodes))
            runs.append(run)
    if args.env not in MAX_RETURN_EXPERTS:
        for context in expert_contexts(args.env, args.experts):
            for seed in expert_seeds:
                extra = {"env": {"modality": "state", "train_contexts": "specific", "context": context}}
                overrides = [*common, "variant=dreamer", f"seed={seed}"]
                cfg = build_config(DreamerConfig, "dreamer", args.preset, overrides=overrides, extra=extra)
                jobs.append((cfg, expert_run_dir(root / "experts", args.env, context, seed), 0))
    todo = [j for j in jobs if trained_to(j[1]) < args.steps or (j[2] and not grid_evaluated(j[1], args.steps))]
    print(f"{len(jobs)} runs, {len(todo)} to train or evaluate, {args.jobs} at a time", flush=True)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        futures = [pool.submit(run_job, cfg, run, episodes, args.threads) for cfg, run, episodes in todo]
        for future in as_completed(futures):
            print(future.result(), flush=True)
    table_path = root / "experts" / args.env / "experts.json"
    if not table_path.exists():
        build_expert_table(args.env, root / "experts", expert_seeds, args.episodes, args.jobs, subset=args.experts)
    out = args.out or f"benchmarks/results/zero_shot_{args.env}"
    zero_shot_report(runs, table_path, out, args.reps)
    print("wrote", out)


if __name__ == "__main__":
    main()
