"""Reduced-scale latent-action study on the 2-core CPU (issue 5/8): `action`, `la` and `la-vq` trained on the same
scripted PushT data with one preset, then the validation-metric table of spec §10.

    python benchmarks/latent_study.py --preset state --episodes 300 --steps 3000

Every stage reuses what exists under ``--root`` (data, cache, runs resume), so the study can be stopped and continued.
Writes benchmarks/results/latent_study_<preset>_<steps>steps/{metrics.json, table.md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config
from wmlab.data.collect import CollectConfig, collect_pusht
from wmlab.data.features import encode_store
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError
from wmlab.latent.run import run_metrics
from wmlab.latent.train import LatentConfig, train_latent
from wmlab.runs import Checkpointer, RunDir

COLUMNS = ("latent_pred_error", "copy_error", "rollout_mse", "swap_score", "shuffle_delta")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="state")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--size", type=int, default=96, help="rendered image size of the collected data")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--variants", default="action,la,la-vq")
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--encoder-dtype", default="fp32", help="fp32 or bf16 (autocast) for the one-time DINOv2 pass")
    parser.add_argument("--root", default="runs/latent_study")
    args = parser.parse_args()
    root = Path(args.root)
    data = root / f"pusht-{args.episodes}-{args.size}"
    try:
        EpisodeStore.open(data)
    except WmlabError:
        collect_pusht(CollectConfig(episodes=args.episodes, image_size=args.size), data, args.workers)
    probe = build_config(LatentConfig, "latent", args.preset)
    encoder = "state" if probe.data.features == "state" else "dinov2"
    size = 0 if encoder == "state" else int(probe.data.features.split("-")[-1])
    encode_store(data, encoder, size or 224, dtype=args.encoder_dtype)
    results = {}
    for variant in args.variants.split(","):
        run = root / f"{args.preset}-{variant}"
        cfg = build_config(
            LatentConfig,
            "latent",
            args.preset,
            overrides=[f"data.path={data}", f"model.variant={variant}", f"train.max_steps={args.steps}"],
        )
        at = Checkpointer(RunDir(run).checkpoints_dir).latest_step()
        if at < args.steps:  # a run already at or past --steps is never touched (it may be training further)
            train_latent(cfg, run)
            at = args.steps
        stored = run / "results" / "metrics.json"
        previous = json.loads(stored.read_text()) if stored.exists() else {}
        same = previous.get("step") == args.steps and previous.get("rollouts") == args.rollouts
        if same and all(column in previous for column in COLUMNS):
            results[variant] = previous  # `wmlab metrics` already measured this checkpoint, settings and metrics
        elif at == args.steps:
            results[variant] = run_metrics(run, args.rollouts)
        else:
            raise WmlabError(
                f"{run} is at step {at}, past --steps {args.steps}, and holds no metrics of step {args.steps} with "
                f"{args.rollouts} rollouts; give --steps {at} or a new --root"
            )
    out = Path(f"benchmarks/results/latent_study_{args.preset}_{args.steps}steps")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps({"args": vars(args), "results": results}, indent=1) + "\n")
    lines = [
        f"# Latent-action study, preset `{args.preset}` ({args.episodes} scripted episodes, {args.steps} steps)",
        "",
        "| variant | " + " | ".join(COLUMNS) + " | perplexity | dead codes | flags |",
        "|---" * (len(COLUMNS) + 4) + "|",
    ]
    for variant, r in results.items():
        cells = [f"{r[c]['mean']:.4f} [{r[c]['ci_low']:.4f}, {r[c]['ci_high']:.4f}]" for c in COLUMNS]
        ppl = f"{r['perplexity']:.2f}" if "perplexity" in r else "-"
        dead = f"{r['dead_code_rate']:.2f}" if "dead_code_rate" in r else "-"
        flags = ", ".join(k for k, on in r["flags"].items() if on) or "none"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {ppl} | {dead} | {flags} |")
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
