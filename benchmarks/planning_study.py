"""Reduced-scale planning study on the 2-core CPU (issue 6/8): success rates of `action`, `la` and `la-vq` world
models on PushT goal reaching, with the calibration rows, next to each run's validation metrics.

    python benchmarks/planning_study.py --root /root/wmlab_runs/latent_study --preset state --evals 100

Expects the runs of benchmarks/latent_study.py under ROOT/<preset>-<variant> (same data for every variant). For `la`
and `la-vq` the action decoder is trained first if missing or made for another checkpoint, then
every variant plans open loop with its reference planner (CEM for action / la, discrete CEM for la-vq) on the same
100 targets. The oracle row (CEM in the simulator) is read from ``wmlab plan-oracle DATA`` output when present.
Writes benchmarks/results/planning_study_<preset>/{results.json, table.md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wmlab.atomic import atomic_write_text
from wmlab.config import build_config, to_dict
from wmlab.errors import WmlabError
from wmlab.eval.planning import PlanConfig, evaluate_planning, result_name
from wmlab.latent.decoder import DecoderConfig, load_decoder, train_decoder
from wmlab.latent.decoder_pairs import world_model_fingerprint
from wmlab.latent.run import load_latent

PLANNERS = {"action": "cem", "la": "cem", "la-vq": "discrete-cem"}


def _rate(row: dict, rule: str) -> str:
    low, high = row[f"success_{rule}_ci95"]
    return f"{row[f'success_{rule}']:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="runs/latent_study")
    parser.add_argument("--preset", default="state", help="latent preset of the runs (state | cpu | cpu-pooled)")
    parser.add_argument("--plan-preset", default=None, help="planner budget preset (default: state, else cpu)")
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-pairs", type=int, default=50_000)
    parser.add_argument("--val-pairs", type=int, default=5_000)
    parser.add_argument("--overrides", nargs="*", default=[], help="plan config overrides (cem.init=empirical)")
    parser.add_argument("--tag", default="", help="suffix of the result folder")
    args = parser.parse_args()
    root = Path(args.root)
    plan_preset = args.plan_preset or ("state" if args.preset == "state" else "cpu")
    results, oracle, calibration = {}, None, None
    for variant, planner in PLANNERS.items():
        run = root / f"{args.preset}-{variant}"
        checkpoint = load_latent(run)[2]
        retrained = variant != "action" and not _decoder_matches(run, world_model_fingerprint(checkpoint))
        if retrained:
            train_decoder(run, DecoderConfig(train_pairs=args.train_pairs, val_pairs=args.val_pairs))
        extra = {"planner": planner, "evals": args.evals, "seed": args.seed}
        cfg = build_config(PlanConfig, "plan", plan_preset, overrides=args.overrides, extra=extra)
        path = run / "plans" / f"{result_name(cfg)}.json"
        result = json.loads(path.read_text()) if path.exists() else None
        # reuse only a result of exactly these settings, this checkpoint and this decoder
        if retrained or result is None or result["plan"] != to_dict(cfg) or result["step"] != checkpoint["step"]:
            result = evaluate_planning(run, cfg)
        metrics_path = run / "results" / "metrics.json"
        result["validation"] = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
        results[variant] = result
        calibration = result["calibration"]
        data = Path(load_latent(run)[1].data.path)
    oracles = sorted((data / "targets").glob(f"oracle-seed{args.seed}-n{args.evals}-*.json"))
    if oracles:
        oracle = json.loads(oracles[-1].read_text())
    out = Path(f"benchmarks/results/planning_study_{args.preset}{args.tag}")
    keep = ("variant", "step", "features", "dataset", "decoder", "plan", "result", "calibration", "targets")
    summary = {
        "args": vars(args),
        "runs": {v: {k: r.get(k) for k in keep} for v, r in results.items()},
        "validation": {v: r["validation"] for v, r in results.items()},
        "oracle": None if oracle is None else {"row": oracle["row"], "file": str(oracles[-1])},
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=1) + "\n")
    lines = [
        f"# Planning study, `{args.preset}` preset ({args.evals} goals, seed {args.seed}, open loop, H = 5)",
        "",
        "Single number: success(state), the DINO-WM state rule; success(coverage) is gym-pusht's rule on the goal "
        "block pose. Wilson 95 % intervals.",
        "",
        "| row | planner | success(state) | success(coverage) | mean state dist | mean wm_emb_l2 | "
        "decoder val RMSE / constant | swap score | latent pred error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, r in results.items():
        row, val = r["result"], r["validation"] or {}
        dec = r["decoder"]
        dec_text = "-" if not dec else f"{dec['val_rmse']:.3f} / {dec['constant_rmse']:.3f}"
        swap = val.get("swap_score", {}).get("mean")
        pred = val.get("latent_pred_error", {}).get("mean")
        lines.append(
            f"| {variant} ({r['step']} steps) | {r['plan']['planner']} N={_budget(r['plan'])} | "
            f"{_rate(row, 'state')} | {_rate(row, 'coverage')} | {row['mean_state_dist']:.1f} | "
            f"{row['mean_wm_emb_l2']:.3f} | {dec_text} | "
            f"{'-' if swap is None else f'{swap:.4f}'} | {'-' if pred is None else f'{pred:.4f}'} |"
        )
    for name in ("null", "replay"):
        row = calibration[name]
        lines.append(
            f"| {name} plan | - | {_rate(row, 'state')} | {_rate(row, 'coverage')} | {row['mean_state_dist']:.1f} "
            "| - | - | - | - |"
        )
    if oracle is not None:
        row, p = oracle["row"], oracle["row"]["planner"]
        lines.append(
            f"| oracle (simulator dynamics) | cem N={p['samples']} k={p['elites']} I={p['iterations']} "
            f"sigma0={p['var_scale']} | {_rate(row, 'state')} | {_rate(row, 'coverage')} | "
            f"{row['mean_state_dist']:.1f} | - | - | - | - |"
        )
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", out)


def _decoder_matches(run: Path, fingerprint: str) -> bool:
    """Whether RUN holds a readable action decoder trained for the world-model checkpoint ``fingerprint``."""
    try:
        return load_decoder(run)[1]["fingerprint"] == fingerprint
    except WmlabError:  # missing or damaged
        return False


def _budget(plan: dict) -> str:
    key = "discrete_cem" if plan["planner"] == "discrete-cem" else plan["planner"]
    p = plan[key]
    return f"{p['samples']} k={p.get('elites', '-')} I={p['iterations']}"


if __name__ == "__main__":
    main()
