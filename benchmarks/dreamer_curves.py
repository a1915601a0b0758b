"""Draw the learning curves that ``dreamer_learning.py`` recorded: the mean return of the last 10 episodes against
env steps, one line per result file, with the threshold.

    python benchmarks/dreamer_curves.py benchmarks/results/dreamer_cartpole_tiny_*.json \\
        --out benchmarks/results/dreamer_cartpole_tiny.png

Each line is labelled with its file name (without ``dreamer_<env>_<preset>_``); a line ends where its run stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wmlab.analysis.plots import pyplot, save_figure


def label(path: Path, result: dict) -> str:
    prefix = f"dreamer_{result['env']}_{result['preset']}_"
    name = path.stem.removeprefix(prefix)
    crossed = result.get("first_env_step_crossing")
    return f"{name} (crossed at {crossed / 1000:.1f}k)" if crossed is not None else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="result JSON files of dreamer_learning.py")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    results = []
    for path in args.results:
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"dreamer_curves: cannot read {path}: {e}") from e
        missing = {"env", "preset", "curve", "threshold_last10"} - set(result)
        if missing:
            raise SystemExit(f"dreamer_curves: {path} is not a dreamer_learning.py result (no {sorted(missing)})")
        results.append((path, result))
    envs = {(r["env"], r["preset"]) for _, r in results}
    if len(envs) != 1:
        raise SystemExit(f"dreamer_curves: give results of one env and preset, got {sorted(envs)}")
    env, preset = envs.pop()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for path, result in sorted(results, key=lambda item: item[0].name):
        curve = result["curve"]
        ax.plot([c["env_step"] for c in curve], [c["last10"] for c in curve], lw=1.4, label=label(path, result))
    thresholds = {r["threshold_last10"] for _, r in results}
    for threshold in thresholds:
        ax.axhline(threshold, color="k", ls="--", lw=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean return of the last 10 episodes")
    ax.set_title(args.title or f"DreamerV3 on {env}, preset {preset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save_figure(fig, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
