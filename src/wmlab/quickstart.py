"""`wmlab quickstart`: both systems end to end at small scale, then one report (about 15 minutes on 2 CPU cores).

1. Contextual world models: `dreamer` and `dali-s` (tiny preset) trained on pendulum with `double_box` training
   contexts, two runs side by side; each evaluated on the whole evaluation grid; scores normalised between the
   random policy and the maximum return (no expert training at this budget); the DALI run's plausibility test
   picks its most influential context dimension and a counterfactual video of it is rendered.
2. Latent-action world models: a scripted PushT dataset, the `state` encoder, `action`, `la` and `la-vq` trained
   with the `state` preset, their validation metrics, action decoders for `la` / `la-vq`, and open-loop planning
   to goals from validation segments (CEM / discrete CEM), with the null-plan and replay calibration rows.
3. ``OUT/report.html`` (self-contained) and ``OUT/report.md``.

Every stage reuses what exists under OUT, so an interrupted quickstart continues where it stopped. ``budget``
scales env steps, training steps, episodes and goals (2.0 is about twice as long and learns more).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console

from wmlab.config import build_config

CONTEXT_VARIANTS = ("dreamer", "dali-s")
LATENT_VARIANTS = ("action", "la", "la-vq")


def _scaled(value: float, budget: float, minimum: int = 1) -> int:
    return max(minimum, int(round(value * budget)))


def _train_contextual(variant: str, run: str, steps: int, grid_episodes: int, threads: int) -> str:
    """One contextual run: train (resuming) and evaluate on the grid; runs in a worker process."""
    import torch

    from wmlab.dreamer.config import DreamerConfig
    from wmlab.eval.zero_shot import train_and_grid_evaluate

    torch.set_num_threads(threads)
    overrides = [f"variant={variant}", "env.name=pendulum", "env.train_contexts=double_box", f"train.steps={steps}"]
    overrides.append(f"train.checkpoint_every={max(500, steps // 4)}")
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=overrides)
    train_and_grid_evaluate(cfg, run, grid_episodes)
    return run


def _latest_step(run: Path) -> tuple[int, float | None]:
    """(newest logged env step, newest episode return) of a training run, read from its metrics file."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0, None
    step, ret = 0, None
    with open(path) as f:
        for line in f.readlines()[-50:]:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            step = max(step, int(record.get("step", 0)))
            ret = record.get("episode/return", ret)
    return step, ret


def _watch(futures: list, runs: list[Path], steps: int) -> None:
    """A progress bar over the env steps of runs that train in worker processes, until the workers finish."""
    from wmlab.progress import progress_bar

    shown = 0
    with progress_bar("train + grid-evaluate", steps * len(runs), "env steps") as bar:
        while not all(f.done() for f in futures):
            latest = [_latest_step(run) for run in runs]
            total = sum(min(step, steps) for step, _ in latest)
            returns = {run.name.split("-", 1)[1]: round(r) for run, (_, r) in zip(runs, latest) if r is not None}
            bar(total - shown, **returns)
            shown = total
            time.sleep(2.0)
        bar(steps * len(runs) - shown)


def quickstart(out: str | Path = "quickstart", budget: float = 1.0, jobs: int = 2, console: Console | None = None):
    """Run the whole quickstart into ``out``; returns the report path and the stage timings."""
    console = console or Console()
    out = Path(out)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def stage(name: str) -> None:
        timings[name] = time.perf_counter() - start
        console.rule(f"[bold]{name}[/bold] ({timings[name] / 60:.1f} min in)")

    # 1. contextual world models ----------------------------------------------------------------------------------
    stage("1/3 contextual world models on pendulum (dreamer and dali-s, double_box contexts)")
    steps, grid_episodes = _scaled(2500, budget, 500), _scaled(2, budget)
    runs = {v: str(out / "runs" / f"pendulum-{v}") for v in CONTEXT_VARIANTS}
    console.print(
        f"training {', '.join(CONTEXT_VARIANTS)} for {steps} env steps each ({jobs} at a time), then "
        f"{grid_episodes} episodes in each of the 76 grid contexts; progress: tensorboard --logdir {out / 'runs'}"
    )
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_train_contextual, v, r, steps, grid_episodes, 1) for v, r in runs.items()]
        _watch(futures, [Path(r) for r in runs.values()], steps)
        for future in futures:
            console.print(f"  done: {future.result()}")
    from wmlab.eval.experts import build_bounded_table

    table_path = out / "experts" / "pendulum" / "experts.json"
    if not table_path.exists():
        build_bounded_table("pendulum", out / "experts", _scaled(5, budget), jobs)
    from wmlab.analysis.counterfactual import counterfactual_analysis
    from wmlab.analysis.plausibility import plausibility_analysis

    dali = Path(runs["dali-s"])
    plaus = plausibility_analysis(dali, episodes=_scaled(4, budget), show_progress=True)
    dim = int(plaus["most_influential"])
    console.print(f"most influential inferred-context dimension: {plaus['most_influential_label']}")
    counterfactual_analysis(dali, dim, episodes=2, videos=2, show_progress=True)

    # 2. latent-action world models -------------------------------------------------------------------------------
    stage("2/3 latent-action world models on PushT (action, la, la-vq; state preset)")
    latent_runs = _latent_stage(out, budget, jobs, console)

    # 3. report ---------------------------------------------------------------------------------------------------
    stage("3/3 report")
    from wmlab.analysis.report import build_report

    intro = (
        f"wmlab quickstart at budget {budget:g}: pendulum Dreamer vs DALI-S ({steps} env steps each, tiny preset, "
        "double_box training contexts; zero-shot scores normalised between the random policy and the maximum "
        "return 0, not by trained experts), and PushT latent world models (state encoder, state preset, "
        f"{_scaled(1500, budget, 200)} training steps). Small budgets: the numbers show the pipeline, not the "
        "methods' final performance."
    )
    path = build_report([*map(Path, runs.values()), *latent_runs], out, table_path, "wmlab quickstart", intro)
    timings["total"] = time.perf_counter() - start
    console.print(f"wrote {path} and {out / 'report.md'} in {timings['total'] / 60:.1f} min")
    return path, timings


def _latent_stage(out: Path, budget: float, jobs: int, console: Console) -> list[Path]:
    from wmlab.data.collect import CollectConfig, collect_pusht
    from wmlab.data.features import encode_store
    from wmlab.eval.planning import PlanConfig, evaluate_planning, result_name
    from wmlab.latent.decoder import DecoderConfig, train_decoder
    from wmlab.latent.run import run_metrics
    from wmlab.latent.train import LatentConfig, train_latent

    data = out / "data" / "pusht"
    episodes = _scaled(150, budget, 40)
    console.print(f"collecting {episodes} scripted PushT episodes (64 px) into {data}")
    collect_pusht(CollectConfig(episodes=episodes, seed=0, image_size=64), data, workers=jobs)
    encode_store(data, "state")  # returns at once when complete; finishes an encoding a kill interrupted
    steps = _scaled(1500, budget, 200)
    evals = _scaled(50, budget, 10)
    runs = []
    for variant in LATENT_VARIANTS:
        run = out / "runs" / f"pusht-{variant}"
        console.print(
            f"{variant}: {steps} training steps, metrics, "
            + ("" if variant == "action" else "decoder, ")
            + f"planning to {evals} goals"
        )
        overrides = [f"data.path={data}", "data.features=state", f"model.variant={variant}"]
        overrides += [f"train.max_steps={steps}", f"train.checkpoint_every={max(100, steps // 4)}"]
        cfg = build_config(LatentConfig, "latent", "state", overrides=overrides)
        train_latent(cfg, run)
        if not (run / "results" / "metrics.json").exists():
            run_metrics(run, rollouts=100)
        if variant != "action" and not (run / "decoder" / "decoder.pt").exists():
            train_decoder(run, DecoderConfig(train_pairs=_scaled(20000, budget), val_pairs=_scaled(2000, budget)))
        planner = "discrete-cem" if variant == "la-vq" else "cem"
        plan = build_config(PlanConfig, "plan", "state", extra={"planner": planner, "evals": evals, "videos": 2})
        if not (run / "plans" / f"{result_name(plan)}.json").exists():
            row = evaluate_planning(run, plan)["result"]
            console.print(
                f"  {variant}: success(state) {row['success_state']:.2f}, "
                f"success(coverage) {row['success_coverage']:.2f}"
            )
        runs.append(run)
    return runs


def summary_lines(timings: dict[str, Any]) -> list[str]:
    return [f"{name}: {seconds / 60:.1f} min" for name, seconds in timings.items()]
