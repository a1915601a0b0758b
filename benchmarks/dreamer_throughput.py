"""Dreamer update throughput: updates/s and achieved GFLOP/s for the tiny / small / paper presets, state and pixel
observations, fp32 and bf16 autocast, with and without torch.compile, on this machine (CPU, or the GPU if any).

    python benchmarks/dreamer_throughput.py                      # every combination (paper pixels is slow on CPU)
    python benchmarks/dreamer_throughput.py --presets tiny,small --modalities state --updates 5

One update = the world-model step and the actor-critic step of `DreamerAgent.train_step` on a replay-shaped
batch (B, T) of the preset, forward and backward. FLOPs of one update are counted once per (preset, modality)
with torch's FlopCounterMode (matmuls and convolutions, forward and backward; elementwise work is not counted),
so GFLOP/s = FLOPs x updates/s. Warm-up updates (compilation included) are timed apart. Writes
benchmarks/results/dreamer_throughput_<device>.json; combinations already in that file are kept unless --redo.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config
from wmlab.dreamer.agent import DreamerAgent, resolve_device
from wmlab.dreamer.config import DreamerConfig

OBS_DIM, ACTION_DIM = 24, 6  # walker's state and action sizes


def replay_batch(cfg: DreamerConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A batch shaped like the replay's: (B, T, ...) with an episode start in every slot."""
    b, t = cfg.train.batch_size, cfg.train.batch_length
    batch = {
        "prev_action": rng.uniform(-1, 1, (b, t, ACTION_DIM)).astype(np.float32),
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
        "context": rng.normal(size=(b, t, 2)).astype(np.float32),
    }
    batch["is_first"][:, 0] = True
    if cfg.env.modality == "state":
        batch["state"] = rng.normal(size=(b, t, OBS_DIM)).astype(np.float32)
    else:
        size = cfg.env.image_size
        batch["image"] = rng.integers(0, 256, (b, t, size, size, 3), dtype=np.uint8)
    return batch


def measure(preset: str, modality: str, precision: str, compiled: bool, updates: int, warmup: int, device: str):
    overrides = [f"env.modality={modality}", f"train.precision={precision}", f"train.compile={compiled}"]
    overrides.append(f"train.device={device}")
    cfg = build_config(DreamerConfig, "dreamer", preset, overrides=overrides)
    agent = DreamerAgent(cfg, OBS_DIM, ACTION_DIM, discrete=False, device=resolve_device(device))
    rng = np.random.default_rng(0)
    batches = [replay_batch(cfg, rng) for _ in range(2)]
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for i in range(warmup):
        agent.train_step(batches[i % 2])
    sync()
    warm_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(updates):
        metrics = agent.train_step(batches[i % 2])
    sync()
    seconds = (time.perf_counter() - start) / updates
    finite = all(np.isfinite(v) for v in metrics.values())
    return agent, batches[0], {"seconds_per_update": seconds, "warmup_seconds": warm_seconds, "finite": finite}


def count_flops(agent: DreamerAgent, batch: dict[str, np.ndarray]) -> float:
    with FlopCounterMode(display=False) as counter:
        agent.train_step(batch)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,small,paper")
    parser.add_argument("--modalities", default="state,pixels")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--compile", default="off,on", help="off, on or off,on")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per combination")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first (compilation happens here)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--redo", action="store_true", help="measure combinations already in the result file")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device).replace(" ", "_") if device.type == "cuda" else "cpu"
    out = Path(args.out or f"benchmarks/results/dreamer_throughput_{name}.json")
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update(
        {
            "machine": {
                "device": name,
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "load_average_at_start": os.getloadavg(),
            },
            "command": "python benchmarks/dreamer_throughput.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
        }
    )
    rows = {(r["preset"], r["modality"], r["precision"], r["compile"]): r for r in result.get("rows", [])}
    flops: dict[tuple[str, str], float] = {}
    for preset in args.presets.split(","):
        for modality in args.modalities.split(","):
            for precision in args.precisions.split(","):
                for compiled in [c == "on" for c in args.compile.split(",")]:
                    key = (preset, modality, precision, compiled)
                    if key in rows and not args.redo:
                        continue
                    agent, batch, row = measure(
                        preset, modality, precision, compiled, args.updates, args.warmup, str(device)
                    )
                    if (preset, modality) not in flops:
                        flops[(preset, modality)] = next(
                            (r["gflop_per_update"] * 1e9 for k, r in rows.items() if k[:2] == (preset, modality)),
                            None,
                        ) or (count_flops(agent, batch) if not compiled else None)
                    gflop = (flops[(preset, modality)] or 0.0) / 1e9
                    row.update(
                        {
                            "preset": preset,
                            "modality": modality,
                            "precision": precision,
                            "compile": compiled,
                            "batch": [agent.cfg.train.batch_size, agent.cfg.train.batch_length],
                            "updates_per_second": 1.0 / row["seconds_per_update"],
                            "gflop_per_update": gflop or None,
                            "gflop_per_second": gflop / row["seconds_per_update"] if gflop else None,
                            "timed_updates": args.updates,
                        }
                    )
                    rows[key] = row
                    print(
                        f"{preset:6s} {modality:7s} {precision} compile={str(compiled):5s} "
                        f"{row['updates_per_second']:.3f} upd/s  {row['gflop_per_second'] or 0:.1f} GFLOP/s  "
                        f"(warm-up {row['warmup_seconds']:.0f} s)",
                        flush=True,
                    )
                    result["rows"] = list(rows.values())
                    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
