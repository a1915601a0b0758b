"""Planning latency: milliseconds per plan against samples N, horizon H and tokens P, for the latent world model
presets' predictors, on this machine (CPU, or the GPU if any).

    python benchmarks/planning_latency.py                         # the CPU grid
    python benchmarks/planning_latency.py --presets paper --samples 300 --horizons 5 --tokens 196   # GPU
    python benchmarks/planning_latency.py --presets paper --tokens 196 --samples 30 --horizons 5 --precision fp32,bf16

One plan = Gaussian CEM over (H, 10) action candidates for a batch of instances (``--instances``), ``--iterations``
iterations of N samples each, every candidate rolled out open loop through the predictor (an `action` model with
random weights: latency does not depend on training). Also reports the cost-function time of one iteration, the
unit that scales with N x H x P. Writes benchmarks/results/planning_latency_<device>.json; rows already there are
kept unless --redo. Combinations whose single cost evaluation exceeds --max-seconds are skipped and listed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config
from wmlab.latent.train import LatentConfig
from wmlab.latent.world_model import LatentWorldModel
from wmlab.planning import BoxSpace, CEMConfig, goal_mse, make_planner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="state,cpu,paper", help="latent presets whose predictor is timed")
    parser.add_argument("--samples", default="30,100,300")
    parser.add_argument("--horizons", default="1,5")
    parser.add_argument("--tokens", default="1,16,64,196", help="P values (state-preset rows use P = 1, E = 5)")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="skip combos slower than this per iteration")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16 (autocast of the rollout)")
    parser.add_argument("--redo", action="store_true")
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    name = torch.cuda.get_device_name(device).replace(" ", "_") if device.type == "cuda" else "cpu"
    out = Path(f"benchmarks/results/planning_latency_{name}.json")
    result = json.loads(out.read_text()) if out.exists() else {"rows": [], "skipped": []}
    result["machine"] = {
        "device": name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }
    done = {(r["preset"], r["tokens"], r["samples"], r["horizon"], r.get("precision", "fp32")) for r in result["rows"]}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for preset in args.presets.split(","):
        cfg = build_config(LatentConfig, "latent", preset, overrides=["model.variant=action"])
        token_options = [1] if preset == "state" else [int(p) for p in args.tokens.split(",") if int(p) > 1]
        for tokens in token_options:
            dim = 5 if preset == "state" else 384
            model = LatentWorldModel(cfg.model, tokens, dim, seed=0).to(device).eval()
            combos = [
                (int(h), int(n), precision)
                for h in args.horizons.split(",")
                for n in args.samples.split(",")
                for precision in args.precision.split(",")
            ]
            for horizon, samples, precision in combos:
                key = (preset, tokens, samples, horizon, precision)
                if key in done and not args.redo:
                    continue
                generator = torch.Generator(device=device).manual_seed(0)
                current = torch.randn(args.instances, tokens, dim, device=device, generator=generator)
                goal = torch.randn(args.instances, tokens, dim, device=device, generator=generator)

                @torch.no_grad()
                def cost(candidates, current=current, goal=goal, model=model, bf16=precision == "bf16"):
                    b, n = candidates.shape[:2]
                    start = current.repeat_interleave(n, 0)[:, None]
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        predicted = model.rollout(start, model.action_encoder(candidates.flatten(0, 1)))
                    return goal_mse(predicted.unflatten(0, (b, n)), goal, "last")

                candidates = torch.randn(args.instances, samples, horizon, 10, device=device)
                cost(candidates[:, :2])  # warm-up
                sync()
                begin = time.perf_counter()
                cost(candidates)
                sync()
                per_iteration = time.perf_counter() - begin
                if per_iteration > args.max_seconds:
                    result["skipped"].append(
                        {
                            "preset": preset,
                            "tokens": tokens,
                            "samples": samples,
                            "horizon": horizon,
                            "precision": precision,
                            "seconds_per_iteration": per_iteration,
                        }
                    )
                    print(f"skip {key}: {per_iteration:.1f} s per iteration", flush=True)
                    continue
                cem = CEMConfig(samples=samples, elites=max(2, samples // 10), iterations=args.iterations)
                planner = make_planner("cem", BoxSpace(10), cem)
                begin = time.perf_counter()
                planner.plan(cost, args.instances, horizon, generator)
                sync()
                per_plan = time.perf_counter() - begin
                row = {
                    "preset": preset,
                    "tokens": tokens,
                    "token_dim": dim,
                    "samples": samples,
                    "horizon": horizon,
                    "precision": precision,
                    "iterations": args.iterations,
                    "instances": args.instances,
                    "ms_per_plan": 1000 * per_plan,
                    "ms_per_cost_iteration": 1000 * per_iteration,
                }
                result["rows"].append(row)
                print(
                    f"{preset:5s} P={tokens:3d} N={samples:3d} H={horizon} {precision}: "
                    f"{row['ms_per_plan']:.0f} ms/plan "
                    f"({row['ms_per_cost_iteration']:.0f} ms per cost call)",
                    flush=True,
                )
                atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
