"""Why do CartPole episodes end? Counts, per block of replayed steps, the terminal steps where the cart left the track
(|x| > 2.4) and those where the pole fell (|theta| > 12 degrees), from a Dreamer run's replay on disk.

    python benchmarks/cartpole_failures.py /root/wmlab_runs/cartpole/plain-s0 /root/wmlab_runs/cartpole/repval-s0 \\
        --out benchmarks/results/dreamer_cartpole_failures.json

The thresholds are gymnasium's CartPole ones (the default context; a run on other contexts keeps the same limits).
Step indices count the first worker's steps (env steps for the one-env tiny preset), from the oldest one still on
disk (``first_step``, 0 unless the FIFO capacity dropped old steps).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.data.replay import read_streams, stream_first_steps
from wmlab.errors import WmlabError

X_LIMIT = 2.4  #: cart position at which gymnasium's CartPole terminates
THETA_LIMIT = 12 * 2 * math.pi / 360  #: pole angle (rad) at which it terminates


def failure_causes(state: np.ndarray, is_terminal: np.ndarray, block: int, first_step: int = 0) -> list[dict]:
    """Per block of ``block`` steps: terminal steps, and how many of them have the cart off the track / the pole down.

    state: (N, 4) CartPole observations (x, x_dot, theta, theta_dot); is_terminal: (N,) bool; first_step: the step
    index of row 0. Blocks are aligned to multiples of ``block`` in step index.
    """
    rows_of_terminals = np.flatnonzero(is_terminal)
    off_track = np.abs(state[rows_of_terminals, 0]) > X_LIMIT
    fallen = np.abs(state[rows_of_terminals, 2]) > THETA_LIMIT
    steps = rows_of_terminals + first_step
    end = first_step + len(is_terminal)
    rows = []
    for start in range(first_step - first_step % block, end, block):
        inside = (steps >= start) & (steps < start + block)
        rows.append(
            {
                "steps": [max(start, first_step), min(start + block, end)],
                "terminals": int(inside.sum()),
                "cart_off_track": int((inside & off_track).sum()),
                "pole_fallen": int((inside & fallen).sum()),
                "other": int((inside & ~off_track & ~fallen).sum()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="Dreamer run directories of CartPole runs")
    parser.add_argument("--block", type=int, default=10_000, help="steps per row")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = {}
    for run in args.runs:
        try:
            streams = read_streams(run / "replay")
        except WmlabError as e:
            raise SystemExit(f"cartpole_failures: {e}") from e
        if not streams or "state" not in streams[0] or streams[0]["state"].shape[-1] != 4:
            raise SystemExit(f"cartpole_failures: {run} holds no CartPole replay (expected replay/ with a 4-d state)")
        stream, first_step = streams[0], stream_first_steps(run / "replay")[0]
        rows = failure_causes(stream["state"], stream["is_terminal"].astype(bool), args.block, first_step)
        runs[run.name] = {"first_step": first_step, "replayed_steps": len(stream["is_terminal"]), "blocks": rows}
        for row in rows:
            print(run.name, row)
    command = "python benchmarks/cartpole_failures.py " + " ".join(str(r) for r in args.runs)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps({"runs": runs, "command": command}, indent=1) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
