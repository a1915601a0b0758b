"""PushT collection throughput: frames/s of `collect_pusht` (scripted policy, rendering, zarr writes) at 96 and
224 px with 1 and 2 worker processes.

    python benchmarks/collect_throughput.py [--episodes 12] [--out benchmarks/results/collect_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from wmlab.atomic import atomic_write_text
from wmlab.data.collect import CollectConfig, collect_pusht


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/results/collect_throughput.json")
    args = parser.parse_args()
    results = {
        "episodes": args.episodes,
        "frames_per_second": {},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": list(os.getloadavg()),
        },
    }
    for size in (96, 224):
        for workers in (1, 2):
            config = CollectConfig(episodes=args.episodes, seed=0, image_size=size)
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                store = collect_pusht(config, os.path.join(folder, "d"), workers=workers, show_progress=False)
                seconds = time.perf_counter() - start
                frames = int(store.lengths.sum())
            rate = frames / seconds
            results["frames_per_second"][f"{size}px/{workers}_workers"] = rate
            print(f"{size} px, {workers} workers: {frames} frames in {seconds:.1f} s = {rate:.0f} frames/s", flush=True)
    results["machine"]["load_average_after"] = list(os.getloadavg())
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
