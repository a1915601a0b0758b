"""Smoke test of the `paper` Dreamer presets on this machine: walker and ball_in_cup, state and pixels, for a given
variant, each trained past the replay prefill for a few hundred env steps through `train_dreamer` (the real loop:
4 env workers, prefill, train ratio 512, checkpoint), recording wall time, env steps/s and updates/s.

    python benchmarks/dreamer_paper_smoke.py --variant dali-s --extra-steps 200

The prefill fills the replay with B * T = 1024 windows of uniform random actions before the first update, so the
run length is the prefill plus ``--extra-steps``. Writes benchmarks/results/dreamer_paper_smoke_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.train import train_dreamer
from wmlab.runs import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="walker,ball_in_cup")
    parser.add_argument("--modalities", default="state,pixels")
    parser.add_argument("--variant", default="dali-s")
    parser.add_argument("--extra-steps", type=int, default=200, help="env steps after the prefill")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    name = torch.cuda.get_device_name(0).replace(" ", "_") if device == "cuda" else "cpu"
    out = Path(f"benchmarks/results/dreamer_paper_smoke_{name}.json")
    result = json.loads(out.read_text()) if out.exists() else {"rows": []}
    result["machine"] = {
        "device": name,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
    }
    for env in args.envs.split(","):
        for modality in args.modalities.split(","):
            probe = build_config(DreamerConfig, "dreamer", "paper")
            prefill = probe.train.batch_size * probe.train.batch_length + probe.env.num_envs * probe.train.batch_length
            steps = prefill + args.extra_steps
            overrides = [
                f"variant={args.variant}",
                f"env.name={env}",
                f"env.modality={modality}",
                "env.train_contexts=double_box",
                f"train.steps={steps}",
                f"train.device={device}",
                f"train.checkpoint_every={steps}",
                f"train.log_every={args.extra_steps // 2}",
            ]
            cfg = build_config(DreamerConfig, "dreamer", "paper", overrides=overrides)
            with tempfile.TemporaryDirectory() as folder:
                begin = time.perf_counter()
                summary = train_dreamer(cfg, Path(folder) / "run", show_progress=True)
                seconds = time.perf_counter() - begin
                records = read_metrics(Path(folder) / "run" / "metrics.jsonl")
            perf = [r for r in records if "perf/updates_per_s" in r]
            losses = [r for r in records if "wm/loss" in r]
            row = {
                "env": env,
                "modality": modality,
                "variant": args.variant,
                "env_steps": summary.get("env_steps"),
                "updates": summary.get("updates"),
                "wall_seconds": seconds,
                "updates_per_second_last_interval": perf[-1]["perf/updates_per_s"] if perf else None,
                "env_steps_per_second_last_interval": perf[-1].get("perf/env_steps_per_s") if perf else None,
                "last_wm_loss": losses[-1]["wm/loss"] if losses else None,
                "command": f"python benchmarks/dreamer_paper_smoke.py --variant {args.variant} "
                f"--extra-steps {args.extra_steps}",
            }
            result["rows"] = [
                r for r in result["rows"] if (r["env"], r["modality"], r["variant"]) != (env, modality, args.variant)
            ] + [row]
            atomic_write_text(out, json.dumps(result, indent=1) + "\n")
            print(json.dumps(row), flush=True)
    print("wrote", out)


if __name__ == "__main__":
    main()
