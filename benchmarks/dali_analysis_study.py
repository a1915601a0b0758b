"""DALI analyses on the reduced-scale zero-shot study's runs (issue 7/8): context probe R^2 per variant, the
plausibility table (which inferred-context dimension the model uses), and a counterfactual video of the most
influential dimension.

    python benchmarks/dali_analysis_study.py --root /root/wmlab_runs/zero_shot_study --env pendulum --seeds 0,1,2

For every run ROOT/<env>/<variant>-s<seed> that exists: `wmlab analyze context` (probe from the inferred / GT
context and from the RSSM latent, held-out episodes), and for the contextual variants `wmlab analyze plausibility`
then `wmlab analyze counterfactual --dim <most influential>`. Results are reused when present (delete
RUN/analysis to redo). Writes benchmarks/results/dali_analysis_<env>/{results.json, table.md} and copies the
counterfactual video and plots of the first seed of each contextual variant there.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from wmlab.analysis.counterfactual import counterfactual_analysis
from wmlab.analysis.plausibility import plausibility_analysis
from wmlab.analysis.probe import context_analysis
from wmlab.atomic import atomic_write_text
from wmlab.config import load_config
from wmlab.dreamer.config import DreamerConfig
from wmlab.eval.zero_shot import trained_to


def _cached(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    return compute()


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f} (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="runs/zero_shot_study")
    parser.add_argument("--env", default="pendulum")
    parser.add_argument("--variants", default="dreamer,crssm-d,dali-s,dali-d")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per context for the probe recording")
    parser.add_argument("--plausibility-episodes", type=int, default=10)
    parser.add_argument("--m", type=float, default=3.0)
    args = parser.parse_args()
    out = Path(f"benchmarks/results/dali_analysis_{args.env}")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for variant in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            run = Path(args.root) / args.env / f"{variant}-s{seed}"
            if (
                not (run / "config.yaml").exists()
                or trained_to(run) < load_config(DreamerConfig, run / "config.yaml").train.steps
            ):
                continue  # missing or still training
            entry: dict = {}
            entry["probe"] = _cached(
                run / "analysis" / "context" / "probe.json",
                lambda run=run: context_analysis(run, episodes=args.episodes, show_progress=True),
            )["probe"]
            if variant != "dreamer":
                plaus = _cached(
                    run / "analysis" / "plausibility" / "plausibility.json",
                    lambda run=run: plausibility_analysis(
                        run, m=args.m, episodes=args.plausibility_episodes, show_progress=True
                    ),
                )
                entry["plausibility"] = {
                    "most_influential": plaus["most_influential"],
                    "mean_auc": plaus["mean_auc"],
                    "dimensions": [
                        {k: d[k] for k in ("dimension", "label", "sigma", "auc", "low", "high")}
                        for d in plaus["dimensions"]
                    ],
                }
                dim = int(plaus["most_influential"])
                cf = _cached(
                    run / "analysis" / "counterfactual" / f"d{dim}.json",
                    lambda run=run, dim=dim: counterfactual_analysis(run, dim, m=args.m, show_progress=True),
                )
                entry["counterfactual"] = {k: cf[k] for k in ("dimension", "label", "offset", "effect_plus")}
                if seed == int(args.seeds.split(",")[0]):
                    for suffix in (".mp4", "_obs.png", "_effect.png"):
                        source = run / "analysis" / "counterfactual" / f"d{dim}{suffix}"
                        if source.exists():
                            shutil.copyfile(source, out / f"{variant}-s{seed}-counterfactual-d{dim}{suffix}")
            results[f"{variant}-s{seed}"] = entry
    features = sorted(next(iter(results.values()))["probe"]["latent"]["r2"])
    lines = [
        f"# DALI analyses, {args.env} (reduced-scale zero-shot study runs)",
        "",
        "Ridge probe R^2 on held-out episodes (mean ± sd over seeds), from DALI's inferred context (cRSSM is given",
        "the ground truth, so it has no context column) and from the RSSM latent [h, z]. Plausibility: AUC of a",
        "classifier ensemble separating imagined trajectories with one context",
        f"dimension shifted by ±{args.m:g} sigma from unshifted ones (0.5 = the model ignores the dimension).",
        "",
        "| variant | "
        + " | ".join(f"R^2 context→{f}" for f in features)
        + " | "
        + " | ".join(f"R^2 latent→{f}" for f in features)
        + " | mean AUC | most influential (AUC) |",
        "|---|" + "---|" * (2 * len(features) + 2),
    ]
    for variant in args.variants.split(","):
        entries = [v for k, v in results.items() if k.rsplit("-s", 1)[0] == variant]
        if not entries:
            continue
        ctx = [_mean_sd([e["probe"].get("context", {}).get("r2", {}).get(f) for e in entries]) for f in features]
        lat = [_mean_sd([e["probe"]["latent"]["r2"].get(f) for e in entries]) for f in features]
        plaus = [e["plausibility"] for e in entries if "plausibility" in e]
        auc = _mean_sd([p["mean_auc"] for p in plaus]) if plaus else "-"
        tops = [p["dimensions"][p["most_influential"]] for p in plaus]
        top = ", ".join(f"{d['label']} ({d['auc']:.2f})" for d in tops) or "-"
        lines.append(f"| {variant} | " + " | ".join(ctx) + " | " + " | ".join(lat) + f" | {auc} | {top} |")
    atomic_write_text(out / "results.json", json.dumps({"args": vars(args), "runs": results}, indent=1) + "\n")
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", out)


if __name__ == "__main__":
    main()
