"""Quantitative context probe (spec/dali.md §10.2): how linearly decodable is the true context?

A ridge regression maps a representation X (the inferred context c_t; as a reference for every variant, the latent
state [h_t, z_t]) to each normalised GT feature. Train and test sets are split **by episode** (episode 0 of every
context trains, the others test; no episode is ever split), X is standardised with train statistics, and the ridge
strength is chosen per feature by grouped K-fold CV over the training episodes. Reported: test R^2 per feature,
overall (full windows, n_t = K), per region of the run's training setting, and as a function of the window fill.

    rec = Recording.load("runs/w-dali/analysis/context/recording.npz")
    result = context_probe(rec)                         # {"context": {"r2": {"gravity": 0.93, ...}, ...}, ...}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.analysis.context_recording import (
    SCORED_SETTINGS,
    Recording,
    analysis_contexts,
    load_run_policy,
    record_contexts,
)
from wmlab.analysis.plots import pyplot, save_figure
from wmlab.atomic import atomic_write_text
from wmlab.errors import WmlabError

#: ridge strengths searched by the grouped CV (spec §10.2)
ALPHAS = tuple(10.0**k for k in range(-4, 5))


@dataclass
class RidgeProbe:
    """A fitted probe: standardisation (D,) and one ridge regression per target.

    Args:
        mean, scale: train statistics of X (D,); scale is 1 where X is constant.
        coef: (F, D) weights on standardised X; intercept: (F,); alpha: (F,) chosen ridge strengths.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> predictions (N, F)."""
        return ((x - self.mean) / self.scale) @ self.coef.T + self.intercept


def r2_per_feature(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """R^2 = 1 - sum (y - y^)^2 / sum (y - mean y)^2 per column of (N, F) arrays; NaN where y is constant."""
    residual = ((y - prediction) ** 2).sum(0)
    total = ((y - y.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 1e-12, 1.0 - residual / np.maximum(total, 1e-12), np.nan)


def fit_ridge_probe(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas: Sequence[float] = ALPHAS, folds: int = 5
) -> RidgeProbe:
    """Standardise x (N, D) and fit a ridge regression to each column of y (N, F).

    The ridge strength of each target minimises the mean squared error of a grouped K-fold CV over ``groups`` (N,)
    (episodes: a group is never split); with fewer than two groups the middle strength is used.
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2:
        raise WmlabError(f"a probe needs at least 2 training steps, got {len(x)}; record longer or more episodes")
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    xs = (x - mean) / scale
    alphas = np.asarray(alphas, np.float64)
    n_groups = len(np.unique(groups))
    if n_groups >= 2:
        errors = np.zeros((len(alphas), y.shape[1]))
        for train, valid in GroupKFold(n_splits=min(folds, n_groups)).split(xs, y, groups):
            for a, alpha in enumerate(alphas):
                model = Ridge(alpha=alpha).fit(xs[train], y[train])
                errors[a] += ((model.predict(xs[valid]) - y[valid]) ** 2).mean(0)
        best = alphas[errors.argmin(0)]
    else:
        best = np.full(y.shape[1], alphas[len(alphas) // 2])
    model = Ridge(alpha=best).fit(xs, y)
    return RidgeProbe(mean, scale, np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), best)


def episode_split(rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) step masks (N,): episode 0 of every context trains, every other episode tests (spec §10.2)."""
    if rec.meta["episodes"] < 2:
        raise WmlabError(
            "the probe holds out whole episodes and needs at least 2 episodes per context; record with --episodes 2"
        )
    train = rec.steps["episode_in_context"] == 0
    return train, ~train


def fill_levels(window: int) -> list[int]:
    """Window fills at which R^2 is reported: 1, 2, 4, ..., and K."""
    levels = [2**k for k in range(int(math.log2(window)) + 1)]
    return levels + ([window] if levels[-1] != window else [])


def _clean(value: Any) -> Any:
    """JSON-safe numbers: NaN -> None, numpy scalars and arrays -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def probe_inputs(rec: Recording) -> dict[str, np.ndarray]:
    """The representations probed: ``context`` (inferred c_t, DALI only) and ``latent`` ([h_t, z_t], every run)."""
    inputs = {}
    if rec.meta["context_kind"] == "inferred":
        inputs["context"] = rec.steps["context"].astype(np.float32)
    inputs["latent"] = rec.latent("posterior")
    return inputs


def probe_representation(
    rec: Recording, x: np.ndarray, alphas: Sequence[float] = ALPHAS, folds: int = 5
) -> dict[str, Any]:
    """Probe one representation x (N, D) of a recording: R^2 per GT feature overall, per region and per fill."""
    names = rec.meta["feature_names"]
    y = rec.steps["gt"].astype(np.float64)
    train, test = episode_split(rec)
    full = rec.full_windows
    fit = train & full
    if not fit.any() or not (test & full).any():
        raise WmlabError(
            f"no full context windows (n_t = K = {rec.meta['window']}) in the train or test episodes; record longer "
            "episodes (raise --max-steps)"
        )
    probe = fit_ridge_probe(x[fit], y[fit], rec.steps["episode"][fit], alphas, folds)
    prediction = probe.predict(x)
    scored = test & full
    result: dict[str, Any] = {
        "r2": dict(zip(names, r2_per_feature(y[scored], prediction[scored]))),
        "alpha": dict(zip(names, probe.alpha)),
        "n_train": int(fit.sum()),
        "n_test": int(scored.sum()),
        "dim": int(x.shape[1]),
    }
    setting = rec.meta["train_contexts"]
    if setting in SCORED_SETTINGS:
        regions = np.array([r[setting] or "unscored" for r in rec.meta["regions"]])[rec.steps["context_id"]]
        result["r2_by_region"] = {
            region: dict(
                zip(names, r2_per_feature(y[scored & (regions == region)], prediction[scored & (regions == region)]))
            )
            for region in sorted(set(regions[scored]))
        }
    result["r2_by_fill"] = {}
    for level in fill_levels(rec.meta["window"]):
        at = test & (rec.steps["fill"] == level)
        if at.any():
            result["r2_by_fill"][level] = dict(zip(names, r2_per_feature(y[at], prediction[at])))
    return result


def context_probe(rec: Recording, alphas: Sequence[float] = ALPHAS, folds: int = 5) -> dict[str, Any]:
    """Probe every representation of :func:`probe_inputs`. Returns {input: :func:`probe_representation` result}."""
    return {name: probe_representation(rec, x, alphas, folds) for name, x in probe_inputs(rec).items()}


def plot_probe_fill(result: dict[str, Any], names: Sequence[str], path: str | Path) -> Path:
    """R^2 against the window fill n_t, one line per (input, feature)."""
    fig, ax = pyplot().subplots(figsize=(5, 3.2))
    for name, res in result.items():
        levels = sorted(res["r2_by_fill"], key=int)
        for feature in names:
            values = [res["r2_by_fill"][level][feature] for level in levels]
            values = [np.nan if v is None else v for v in values]
            ax.plot([int(v) for v in levels], values, marker="o", label=f"{name}: {feature}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("window fill $n_t$ (real tokens)")
    ax.set_ylabel("test $R^2$")
    ax.axhline(0, color="gray", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def context_analysis(
    run: str | Path,
    contexts: str = "tsne",
    episodes: int = 2,
    max_steps: int | None = None,
    seed: int = 0,
    tsne: bool = True,
    max_points: int = 3000,
    mode: str = "sample",
    out: str | Path | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """``wmlab analyze context``: record, probe, draw t-SNE maps. Writes into ``out`` (default RUN/analysis/context):
    ``recording.npz``, ``probe.json``, ``probe_fill.png`` and ``tsne_<feature>.png``. Returns the probe.json data.

    Args:
        contexts: ``tsne`` (the §10.3 contexts, default), ``grid`` (all evaluation contexts) or ``default``.
        episodes: episodes per context (>= 2: the probe holds out whole episodes).
        max_steps: cap on the episode length (CPU budget).
        max_points: cap on the t-SNE points per panel.
    """
    from wmlab.analysis.tsne import tsne_maps

    policy = load_run_policy(run, mode)
    out = Path(out) if out is not None else Path(run) / "analysis" / "context"
    rec = record_contexts(
        policy, analysis_contexts(policy.config.env.name, contexts), episodes, seed, max_steps, False, show_progress
    )
    rec.save(out / "recording.npz")
    probe = context_probe(rec)
    names = rec.meta["feature_names"]
    plot_probe_fill(_clean(probe), names, out / "probe_fill.png")
    files = ["recording.npz", "probe_fill.png"]
    if tsne:
        files += [p.name for p in tsne_maps(rec, out, seed=seed, max_points=max_points)]
    result = {
        "run": str(run),
        "variant": rec.meta["variant"],
        "env": rec.meta["env"],
        "checkpoint_step": rec.meta["checkpoint_step"],
        "contexts": rec.contexts,
        "episodes": episodes,
        "steps": len(rec),
        "probe": probe,
        "files": files + ["probe.json"],
    }
    result = _clean(result)
    atomic_write_text(out / "probe.json", json.dumps(result, indent=1) + "\n")
    return result
