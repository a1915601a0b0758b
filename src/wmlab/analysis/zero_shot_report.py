"""The zero-shot generalisation report of a set of contextual runs (spec/dali.md §9.5-§9.7).

For each method (variant, plus chi): normalised scores of every seed on every scored context, pooled over the
training settings present; per region (interpolation / extrapolation / mixed) IQM, median, mean and optimality gap
with 95% stratified-bootstrap CIs, the same per training setting, and the probability that a reference method
improves on each other one. Writes ``zero_shot.json``, ``zero_shot.md`` and PNG plots into the output folder.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.envs.contexts import REGIONS, context_space
from wmlab.errors import WmlabError
from wmlab.eval.stats import interval_estimates, probability_of_improvement
from wmlab.eval.zero_shot import ExpertTable, grid_records, normalized_scores
from wmlab.runs import RunDir

LABELS = {"dreamer": "Dreamer-DR", "crssm-s": "cRSSM-S", "crssm-d": "cRSSM-D", "dali-s": "DALI-S", "dali-d": "DALI-D"}
ORDER = ["Dreamer-DR", "cRSSM-S", "cRSSM-D", "DALI-S", "DALI-S-χ", "DALI-D", "DALI-D-χ"]


def method_label(cfg: Any) -> str:
    label = LABELS[cfg.variant]
    if cfg.variant.startswith("dali") and cfg.context.crossmodal:
        label += "-χ"
    return label


def collect_scores(runs: Sequence[str | Path], table: ExpertTable) -> tuple[str, str, dict]:
    """Scores of every run: {method: {setting: {seed: [score records]}}}, plus the env and modality they share."""
    from wmlab.dreamer.config import DreamerConfig

    scores: dict = defaultdict(lambda: defaultdict(dict))
    envs, modalities = set(), set()
    for run in runs:
        cfg = RunDir(run).load_config(DreamerConfig)
        setting = cfg.env.train_contexts
        if setting not in ("single_0", "single_1", "double_box"):
            raise WmlabError(
                f"{run} was trained on '{setting}' contexts; zero-shot reports need single_0, single_1 "
                "or double_box runs"
            )
        envs.add(cfg.env.name)
        modalities.add(cfg.env.modality)
        space = context_space(cfg.env.name)
        scores[method_label(cfg)][setting][cfg.seed] = normalized_scores(grid_records(run), table, space, setting)
    if len(envs) != 1 or len(modalities) != 1:
        raise WmlabError(f"a report covers one environment and modality; got {sorted(envs)} / {sorted(modalities)}")
    if table.env not in envs:
        raise WmlabError(f"the expert table is for {table.env!r}, the runs for {envs.pop()!r}")
    return envs.pop(), modalities.pop(), scores


def score_matrix(by_setting: dict, region: str | None, setting: str | None = None) -> np.ndarray | None:
    """(runs, tasks) matrix of one method: tasks = (setting, context) columns of ``region`` (all regions if None),
    pooled over settings; seeds truncated to the smallest count among settings."""
    settings = [setting] if setting else sorted(by_setting)
    n_runs = min(len(by_setting[s]) for s in settings)
    columns = []
    for s in settings:
        seeds = sorted(by_setting[s])[:n_runs]
        rows = [[r["score"] for r in by_setting[s][seed] if region is None or r["region"] == region] for seed in seeds]
        if rows and rows[0]:
            columns.append(np.array(rows))
    return np.concatenate(columns, axis=1) if columns else None


def zero_shot_report(
    runs: Sequence[str | Path], experts: str | Path, out: str | Path, reps: int = 2000, reference: str | None = None
) -> dict[str, Any]:
    """Build the report; returns its numbers (also written to ``out/zero_shot.json``)."""
    table = ExpertTable.load(experts)
    env, modality, scores = collect_scores(runs, table)
    methods = [m for m in ORDER if m in scores]
    reference = reference or next((m for m in ("DALI-S", "DALI-S-χ", "DALI-D", "DALI-D-χ") if m in methods), None)
    result: dict[str, Any] = {
        "env": env,
        "modality": modality,
        "reference": reference,
        "bootstrap_reps": reps,
        "normalisation": table.kind,
        "methods": methods,
        "regions": {},
        "per_setting": {},
        "improvement": {},
        "runs": {m: {s: sorted(v) for s, v in scores[m].items()} for m in methods},
    }
    for region in REGIONS:
        matrices = {m: x for m in methods if (x := score_matrix(scores[m], region)) is not None}
        if not matrices:
            continue
        result["regions"][region] = interval_estimates(matrices, reps)
        for m, x in matrices.items():
            result["regions"][region][m]["shape"] = list(x.shape)
        if reference in matrices:
            for other in matrices:
                if other != reference and matrices[other].shape[1] == matrices[reference].shape[1]:
                    key = f"{region}: P({reference} > {other})"
                    result["improvement"][key] = probability_of_improvement(matrices[reference], matrices[other], reps)
    for m in methods:
        for setting in scores[m]:
            matrix = score_matrix(scores[m], None, setting)
            result["per_setting"].setdefault(setting, {})[m] = interval_estimates({m: matrix}, reps)[m]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "zero_shot.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "zero_shot.md", markdown_table(result))
    plot_report(result, out)
    return result


def markdown_table(result: dict[str, Any]) -> str:
    kind = result.get("normalisation", "experts")
    top = "the maximum return (no trained experts)" if kind == "max-return" else "expert"
    lines = [
        f"# Zero-shot generalisation: {result['env']} ({result['modality']})",
        "",
        f"Normalised scores (1 = {top}, 0 = random), 95% stratified-bootstrap CIs ({result['bootstrap_reps']} "
        "repetitions). ΔIQM is relative to Dreamer-DR.",
        "",
        "| region | method | runs x tasks | IQM [95% CI] | ΔIQM | median | mean | optimality gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for region, by_method in result["regions"].items():
        base = by_method.get("Dreamer-DR", {}).get("iqm", {}).get("value")
        for m, v in by_method.items():
            iqm = v["iqm"]
            delta = f"{iqm['value'] - base:+.3f}" if base is not None and m != "Dreamer-DR" else ""
            lines.append(
                f"| {region} | {m} | {v['shape'][0]} x {v['shape'][1]} | {iqm['value']:.3f} "
                f"[{iqm['low']:.3f}, {iqm['high']:.3f}] | {delta} | {v['median']['value']:.3f} | "
                f"{v['mean']['value']:.3f} | {v['optimality_gap']['value']:.3f} |"
            )
    if result["improvement"]:
        lines += ["", "| comparison | probability of improvement [95% CI] |", "|---|---|"]
        for key, v in result["improvement"].items():
            lines.append(f"| {key} | {v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}] |")
    lines += [
        "",
        "Per training setting (all scored contexts of the setting):",
        "",
        "| setting | method | IQM [95% CI] | mean |",
        "|---|---|---|---|",
    ]
    for setting, by_method in result["per_setting"].items():
        for m, v in by_method.items():
            iqm = v["iqm"]
            lines.append(
                f"| {setting} | {m} | {iqm['value']:.3f} [{iqm['low']:.3f}, {iqm['high']:.3f}] | "
                f"{v['mean']['value']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def plot_report(result: dict[str, Any], out: Path) -> None:
    """IQM per region with CIs (``iqm.png``) and the probability-of-improvement panel (``improvement.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = list(result["regions"])
    fig, axes = plt.subplots(1, max(1, len(regions)), figsize=(4 * max(1, len(regions)), 3), squeeze=False)
    for ax, region in zip(axes[0], regions):
        by_method = result["regions"][region]
        names = list(by_method)
        values = [by_method[m]["iqm"]["value"] for m in names]
        errors = np.array(
            [[v - by_method[m]["iqm"]["low"], by_method[m]["iqm"]["high"] - v] for m, v in zip(names, values)]
        ).T
        ax.barh(names, values, xerr=errors, color="tab:blue", alpha=0.7, capsize=3)
        ax.set_title(region.capitalize())
        ax.set_xlabel("IQM normalised score")
        ax.invert_yaxis()
    fig.suptitle(f"{result['env']} ({result['modality']}): IQM with 95% CIs")
    fig.tight_layout()
    fig.savefig(out / "iqm.png", dpi=120)
    plt.close(fig)
    if result["improvement"]:
        keys = list(result["improvement"])
        fig, ax = plt.subplots(figsize=(6, 0.5 * len(keys) + 1))
        values = [result["improvement"][k]["value"] for k in keys]
        errors = np.array(
            [[v - result["improvement"][k]["low"], result["improvement"][k]["high"] - v] for k, v in zip(keys, values)]
        ).T
        ax.barh(keys, values, xerr=errors, color="tab:green", alpha=0.7, capsize=3)
        ax.axvline(0.5, color="gray", linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of improvement")
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(out / "improvement.png", dpi=120)
        plt.close(fig)
