"""One self-contained HTML report (and a markdown summary) over any set of wmlab runs.

Contextual Dreamer runs contribute learning curves, the zero-shot report (normalised scores, IQM per region with
confidence intervals) when they were grid-evaluated and an expert table is given, and the DALI analyses found in
their ``analysis/`` folders (probe R^2, plausibility AUC, counterfactual video). Latent world-model runs contribute
their validation metrics and every planning result in ``plans/`` (success under both rules with Wilson intervals,
calibration rows, a planning video). Images and videos are embedded, so ``report.html`` can be mailed as is.

    build_report(["runs/pend-dali", "runs/lavq"], "report/", experts="experts/pendulum/experts.json")
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from wmlab.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from wmlab.errors import WmlabError  # noqa: E402
from wmlab.runs import read_metrics  # noqa: E402

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f3f3f3}img,video{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.note{color:#555;font-size:.92em}code{background:#f5f5f5;padding:0 .2em}
"""


def run_kind(run: str | Path) -> str:
    """``dreamer`` or ``latent`` from the run's saved config; a clear error for anything else."""
    path = Path(run) / "config.yaml"
    if not path.exists():
        raise WmlabError(f"{run} is not a wmlab run (no config.yaml); pass run directories")
    cfg = yaml.safe_load(path.read_text()) or {}
    if "behavior" in cfg and "variant" in cfg:
        return "dreamer"
    if "model" in cfg and "predictor" in cfg.get("model", {}):
        return "latent"
    raise WmlabError(f"{run}: unknown run type (neither a Dreamer nor a latent world-model config)")


def _embed_image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def _embed_video(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<video controls loop muted autoplay src="data:video/mp4;base64,{data}"></video>'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_tables_to_html(text: str) -> str:
    """Pipe tables and paragraphs of a markdown file (as wmlab writes them) -> HTML."""
    out, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        if rows:
            out.append(_table(rows[0], rows[1:]))
            rows = []
        if line.startswith("#"):
            level = min(4, len(line) - len(line.lstrip("#")) + 2)
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)


def _ci(row: dict, rule: str) -> str:
    low, high = row[f"success_{rule}_ci95"]
    return f"{row[f'success_{rule}']:.2f} [{low:.2f}, {high:.2f}]"


# -- contextual Dreamer runs -----------------------------------------------------------------------------------------
def learning_curves(runs: Sequence[Path], path: Path) -> Path:
    """Episode returns (mean of the last 10) against env steps, one line per run."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for run in runs:
        episodes = [r for r in read_metrics(run / "metrics.jsonl") if "episode/return" in r]
        if not episodes:
            continue
        steps = np.array([r["step"] for r in episodes])
        returns = np.array([r["episode/return"] for r in episodes])
        smooth = np.array([returns[max(0, i - 9) : i + 1].mean() for i in range(len(returns))])
        ax.plot(steps, smooth, label=run.name)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return (mean of last 10 episodes)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _dreamer_section(
    runs: list[Path], out: Path, experts: Path | None, reps: int, reference: str | None = None
) -> tuple[str, str]:
    parts = ["<h2>Contextual world models</h2>"]
    md = ["## Contextual world models", ""]
    rows = []
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        episodes = [r for r in read_metrics(run / "metrics.jsonl") if "episode/return" in r]
        last = np.mean([r["episode/return"] for r in episodes[-10:]]) if episodes else float("nan")
        steps = episodes[-1]["step"] if episodes else 0
        env = cfg["env"]
        rows.append(
            [run.name, cfg["variant"], env["name"], env["modality"], env["train_contexts"], steps, f"{last:.1f}"]
        )
    header = ["run", "variant", "env", "obs", "training contexts", "env steps", "return (last 10 episodes)"]
    parts.append(_table(header, rows))
    md += [_md_table(header, rows), ""]
    parts.append(_embed_image(learning_curves(runs, out / "learning_curves.png")))
    graded = [r for r in runs if _grid_evaluated(r)]
    if experts is not None and graded:
        from wmlab.analysis.zero_shot_report import zero_shot_report

        zero_shot_report(graded, experts, out / "zero_shot", reps, reference)
        table = (out / "zero_shot" / "zero_shot.md").read_text()
        parts.append("<h3>Zero-shot generalisation</h3>")
        parts.append(f'<p class="note">normalisation: {html.escape(str(experts))}</p>')
        parts.append(markdown_tables_to_html(table))
        for name in ("iqm.png", "improvement.png"):
            if (out / "zero_shot" / name).exists():
                parts.append(_embed_image(out / "zero_shot" / name))
        md += [table, ""]
    parts.append(_analysis_section(runs))
    return "\n".join(parts), "\n".join(md)


def _grid_evaluated(run: Path) -> bool:
    """Whether the run's newest checkpoint was evaluated on the whole grid (only those enter the zero-shot report)."""
    from wmlab.eval.zero_shot import grid_records

    try:
        return bool(grid_records(run))
    except WmlabError:
        return False


def _analysis_section(runs: list[Path]) -> str:
    parts = []
    for run in runs:
        folder = run / "analysis"
        if not folder.exists():
            continue
        parts.append(f"<h3>Analyses of {html.escape(run.name)}</h3>")
        probe_path = folder / "context" / "probe.json"
        if probe_path.exists():
            probe = json.loads(probe_path.read_text())["probe"]
            rows = [[source, *[f"{v:.2f}" for v in p["r2"].values()]] for source, p in probe.items()]
            features = list(next(iter(probe.values()))["r2"])
            parts.append(_table(["probe R² from", *features], rows))
        plaus_path = folder / "plausibility" / "plausibility.json"
        if plaus_path.exists():
            plaus = json.loads(plaus_path.read_text())
            rows = [[d["label"], f"{d['auc']:.2f}", f"[{d['low']:.2f}, {d['high']:.2f}]"] for d in plaus["dimensions"]]
            parts.append(_table(["context dimension", "plausibility AUC", "95% CI"], rows))
        for video in sorted((folder / "counterfactual").glob("*.mp4"))[:1]:
            parts.append(f"<p>counterfactual imagination {html.escape(video.stem)} (real | baseline | +m σ | -m σ)</p>")
            parts.append(_embed_video(video))
    return "\n".join(parts)


# -- latent world-model runs -----------------------------------------------------------------------------------------
def planning_bars(results: dict[str, dict], path: Path) -> Path:
    """Success under both rules with Wilson intervals, one group per run / planning result."""
    names = list(results)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names)), 3.6))
    x = np.arange(len(names))
    for offset, rule, color in ((-0.18, "state", "#3b6ea8"), (0.18, "coverage", "#d08c3a")):
        rates = np.array([results[n][f"success_{rule}"] for n in names])
        ci = np.array([results[n][f"success_{rule}_ci95"] for n in names]).T
        ax.bar(x + offset, rates, 0.36, label=f"success({rule})", color=color)
        ax.errorbar(x + offset, rates, yerr=[rates - ci[0], ci[1] - rates], fmt="none", color="black", capsize=3)
    ax.set_xticks(x, names, rotation=15, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (Wilson 95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _latent_section(runs: list[Path], out: Path) -> tuple[str, str]:
    parts = ["<h2>Latent-action world models</h2>"]
    md = ["## Latent-action world models", ""]
    metric_rows = []
    for run in runs:
        path = run / "results" / "metrics.json"
        if path.exists():
            m = json.loads(path.read_text())
            cells = [f"{m[k]['mean']:.4f}" if k in m and "mean" in m[k] else "-" for k in METRICS]
            flags = ", ".join(k for k, on in m.get("flags", {}).items() if on) or "none"
            metric_rows.append([run.name, m.get("variant", "?"), m.get("step", "?"), *cells, flags])
    if metric_rows:
        header = ["run", "variant", "steps", *METRICS, "flags"]
        parts += ["<h3>Validation metrics</h3>", _table(header, metric_rows)]
        md += [_md_table(header, metric_rows), ""]
    results, rows, calibration, video = {}, [], None, None
    for run in runs:
        for path in sorted((run / "plans").glob("*.json")):
            data = json.loads(path.read_text())
            name = f"{run.name}: {path.stem}"
            row = data["result"]
            results[name] = row
            rows.append([name, _ci(row, "state"), _ci(row, "coverage"), f"{row['mean_state_dist']:.1f}"])
            calibration = calibration or data.get("calibration")
            videos = data.get("videos") or []
            if video is None and videos and Path(videos[0]).exists():
                video = Path(videos[0])
    if results:
        for name, row in (calibration or {}).items():
            rows.append(
                [f"{name} plan (calibration)", _ci(row, "state"), _ci(row, "coverage"), f"{row['mean_state_dist']:.1f}"]
            )
        header = ["planning result", "success(state)", "success(coverage)", "mean state distance (px)"]
        parts += ["<h3>Planning to goals (PushT)</h3>", _table(header, rows)]
        parts.append(_embed_image(planning_bars(results, out / "planning_success.png")))
        md += [_md_table(header, rows), ""]
        if video is not None:
            parts.append(f"<p>{html.escape(video.parent.name)}: executed | imagined | goal</p>")
            parts.append(_embed_video(video))
    return "\n".join(parts), "\n".join(md)


METRICS = ("latent_pred_error", "copy_error", "rollout_mse", "swap_score", "shuffle_delta")


def build_report(
    runs: Sequence[str | Path],
    out: str | Path,
    experts: str | Path | None = None,
    title: str = "wmlab report",
    intro: str = "",
    reps: int = 1000,
    reference: str | None = None,
) -> Path:
    """Write ``out/report.html`` (self-contained) and ``out/report.md`` for ``runs``. Returns the HTML path."""
    out = Path(out)
    paths = [Path(r) for r in runs]
    kinds = {run: run_kind(run) for run in paths}
    dreamer = [r for r in paths if kinds[r] == "dreamer"]
    latent = [r for r in paths if kinds[r] == "latent"]
    body = [f"<h1>{html.escape(title)}</h1>"]
    md = [f"# {title}", ""]
    if intro:
        body.append(f"<p>{html.escape(intro)}</p>")
        md += [intro, ""]
    if dreamer:
        section, text = _dreamer_section(dreamer, out, Path(experts) if experts else None, reps, reference)
        body.append(section)
        md.append(text)
    if latent:
        section, text = _latent_section(latent, out)
        body.append(section)
        md.append(text)
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
    page += f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    atomic_write_bytes(out / "report.html", page.encode())
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    return out / "report.html"
