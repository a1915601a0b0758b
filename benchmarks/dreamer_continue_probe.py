"""How well does a trained Dreamer world model see terminations? (the CartPole diagnosis of issue 2/8)

    python benchmarks/dreamer_continue_probe.py --run /root/wmlab_runs/cartpole/mean-s0

Reads the run's replay from disk, takes every real terminal step whose preceding ``--window`` steps lie in the same
episode, filters the window with the newest checkpoint's world model, and reports the continue head's probability
P(continue) at the terminal step and at the steps before it, on the posterior (the model sees the terminal
observation) and open loop (the prior imagines the last k steps from the replayed actions, as imagination does). In
imagination DreamerV3 reads the continue head's mode, so a terminal step with P(continue) >= 0.5 is one the actor
never sees. Writes benchmarks/results/dreamer_continue_probe_<run name>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from wmlab.atomic import atomic_write_text
from wmlab.data.replay import read_streams
from wmlab.dreamer.policy import load_policy
from wmlab.errors import WmlabError
from wmlab.runs import RunDir

OPEN_LOOP_STEPS = (1, 3, 5, 10, 15)  #: prior steps imagined before the terminal step


def terminal_windows(data: dict[str, np.ndarray], window: int) -> np.ndarray:
    """(M, window) step indices ending at a terminal step, with no episode start after the window's first step."""
    ends = np.flatnonzero(data["is_terminal"])
    ends = ends[ends >= window - 1]
    firsts = np.cumsum(data["is_first"].astype(np.int64))
    # no reset strictly inside (start, end]: the episode-start count does not grow after the window's first step
    keep = firsts[ends] == firsts[ends - window + 1]
    return ends[keep][:, None] - window + 1 + np.arange(window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--window", type=int, default=32, help="steps filtered before each terminal step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.window < max(OPEN_LOOP_STEPS) + 2:
        parser.error(
            f"--window must be at least {max(OPEN_LOOP_STEPS) + 2} (the longest open-loop check plus its start)"
        )
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    try:
        policy = load_policy(args.run, device="cpu")
        streams = read_streams(RunDir(args.run).path / "replay")
    except WmlabError as e:
        raise SystemExit(f"dreamer_continue_probe: {e}") from e
    agent, wm = policy.agent, policy.agent.wm
    if agent.cfg.variant != "dreamer":
        raise SystemExit(
            f"dreamer_continue_probe: {args.run} is a {agent.cfg.variant} run; the probe filters without context, so "
            "it reads plain `dreamer` runs only"
        )
    windows = [(stream, terminal_windows(stream, args.window)) for stream in streams]
    if sum(len(index) for _, index in windows) == 0:
        raise SystemExit(f"{args.run}: no terminal step with {args.window} steps of its episode before it")
    keys = [key for key in streams[0] if key != "context"]  # the plain dreamer variant never reads the context
    batch = agent.to_torch({k: np.concatenate([stream[k][index] for stream, index in windows]) for k in keys})
    length = args.window
    with torch.no_grad():
        embed = wm.encode(batch)
        post, _ = wm.rssm.observe(embed, batch["prev_action"], batch["is_first"].bool(), generator=generator)
        posterior = torch.sigmoid(wm.cont_logits(wm.head_features(post, None)))  # (M, T)
        open_loop = {}
        for k in OPEN_LOOP_STEPS:
            state = {key: value[:, length - 1 - k] for key, value in post.items()}
            for j in range(k):
                state = wm.rssm.img_step(state, batch["prev_action"][:, length - k + j], generator=generator)
            open_loop[k] = torch.sigmoid(wm.cont_logits(wm.head_features(state, None)))  # (M,)
    result = {
        "run": str(args.run),
        "env_steps": policy.step,
        "terminal_windows": int(len(batch["is_first"])),
        "terminals_in_replay": int(sum(stream["is_terminal"].sum() for stream in streams)),
        "posterior": {
            "p_continue_at_terminal": float(posterior[:, -1].mean()),
            "terminals_detected": float((posterior[:, -1] < 0.5).float().mean()),
            "p_continue_k_steps_before": {k: float(posterior[:, -1 - k].mean()) for k in range(1, 6)},
            "false_alarms_before": float((posterior[:, :-1] < 0.5).float().mean()),
        },
        "open_loop": {
            k: {"p_continue_at_terminal": float(p.mean()), "terminals_detected": float((p < 0.5).float().mean())}
            for k, p in open_loop.items()
        },
        "command": "python benchmarks/dreamer_continue_probe.py --run " + str(args.run),
    }
    out = Path(args.out or f"benchmarks/results/dreamer_continue_probe_{Path(args.run).name}.json")
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
