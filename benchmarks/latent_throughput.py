"""Training samples/s of the latent world model from the feature cache against re-encoding the frames with DINOv2
at every step (the original code's way), on this machine.

    python benchmarks/latent_throughput.py [--episodes 6] [--size 112] [--steps 5]

Builds a small scripted PushT dataset and its DINOv2 cache in a temporary folder, then times training steps of the
`cpu` preset model (batch 64) both ways. Writes benchmarks/results/latent_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config
from wmlab.data.collect import CollectConfig, collect_pusht
from wmlab.data.features import encode_store
from wmlab.encoders import make_encoder
from wmlab.latent.train import LatentConfig, batch_indices, collate, make_optimizers, open_windows
from wmlab.latent.world_model import LatentWorldModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--variant", default="la-vq")
    parser.add_argument("--out", default="benchmarks/results/latent_throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "pusht"
        collect_pusht(CollectConfig(episodes=args.episodes, image_size=args.size), data, show_progress=False)
        encode_store(data, "dinov2", args.size, show_progress=False)
        cfg = build_config(
            LatentConfig,
            "latent",
            "cpu",
            overrides=[f"data.path={data}", f"data.features=dinov2-{args.size}", f"model.variant={args.variant}"],
        )
        windows = open_windows(cfg, "train")
        p, e = windows[0]["tokens"].shape[1:]
        model = LatentWorldModel(cfg.model, p, e).train()
        optimizers = make_optimizers(model, cfg.train)
        encoder = make_encoder("dinov2-s14", args.size)
        images = windows.store.group["images"]

        def step(batch) -> None:
            loss, _ = model.loss(batch["tokens"], batch["actions"], 10_000)
            for optimizer in optimizers.values():
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers.values():
                optimizer.step()

        timings = {}
        for mode in ("cache", "re-encode"):
            start = time.perf_counter()
            for s in range(args.steps):
                indices = batch_indices(len(windows), cfg.train.batch_size, s, 0)
                batch = collate(windows, indices, torch.device("cpu"))
                if mode == "re-encode":  # what the original code does: encode both frames of every sample
                    rows = np.stack([windows.starts[i] + windows.frameskip * np.arange(2) for i in indices])
                    unique, inverse = np.unique(rows.reshape(-1), return_inverse=True)
                    frames = np.asarray(images.get_orthogonal_selection((unique,)))[inverse]
                    with torch.no_grad():
                        tokens = encoder.encode(frames)
                    batch["tokens"] = tokens.reshape(len(indices), 2, *tokens.shape[1:])
                step(batch)
            seconds = time.perf_counter() - start
            timings[mode] = {
                "samples_per_second": args.steps * cfg.train.batch_size / seconds,
                "seconds_per_step": seconds / args.steps,
            }
            print(mode, {k: round(v, 2) for k, v in timings[mode].items()}, flush=True)
    result = {
        "variant": args.variant,
        "preset": "cpu",
        "size": args.size,
        "tokens": [int(p), int(e)],
        "batch_size": cfg.train.batch_size,
        "steps": args.steps,
        "timings": timings,
        "speedup": timings["cache"]["samples_per_second"] / timings["re-encode"]["samples_per_second"],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()),
            "gpu": torch.cuda.is_available(),
        },
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
