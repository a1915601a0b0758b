"""Counterfactual plausibility test (spec/dali.md §10.6): which context dimension changes the imagined dynamics?

For every context dimension d: baseline imagined trajectories (label 0) and their counterparts with dimension d
shifted by m sigma_d (label 1, random sign per trajectory) are flattened; a classifier ensemble separates them under
5-fold CV; the AUC of the pooled out-of-fold predictions, with a bootstrap mean and 95% percentile interval, says how
detectable the shift is (0.5: no effect). The most influential dimension is the argmax of the AUC.

[lib] Folds keep each (baseline, counterpart) pair together: a classifier that saw a trajectory's twin with the
other label would otherwise score below chance when the shift has no effect. Each fold is therefore exactly
balanced (stratified). Ensembles: ``fast`` (logistic regression + random forest, the CPU default) or ``paper``
(RBF SVM C=30, MLP 1024-1024, AdaBoost 200, as in the spec); each member is seeded and sees standardised inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.analysis.context_recording import load_run_policy, record_contexts, require_context
from wmlab.analysis.counterfactual import needs_images, start_points, trajectories_for_dims
from wmlab.analysis.perturbation import check_choices, context_labels, perturbation_offsets, resolve_sigma
from wmlab.analysis.plots import pyplot, save_figure
from wmlab.atomic import atomic_write_text
from wmlab.envs.contexts import context_space
from wmlab.errors import WmlabError, unknown_name_error
from wmlab.progress import progress_bar

ENSEMBLES = ("fast", "paper")


def classifier_ensemble(kind: str = "fast", seed: int = 0) -> list:
    """Unfitted sklearn pipelines (standardise -> classifier), each seeded."""
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind == "fast":
        members = [
            LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
            RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
        ]
    elif kind == "paper":
        members = [
            SVC(C=30.0, kernel="rbf", probability=True, random_state=seed),
            MLPClassifier(
                hidden_layer_sizes=(1024, 1024),
                alpha=1e-3,
                early_stopping=True,
                validation_fraction=0.2,
                max_iter=2000,
                random_state=seed,
            ),
            AdaBoostClassifier(n_estimators=200, random_state=seed),
        ]
    else:
        raise unknown_name_error("classifier ensemble", kind, ENSEMBLES)
    return [make_pipeline(StandardScaler(), member) for member in members]


def out_of_fold_scores(
    x: np.ndarray, labels: np.ndarray, pairs: np.ndarray, folds: int = 5, ensemble: str = "fast", seed: int = 0
) -> np.ndarray:
    """Ensemble-mean probability of label 1 for every row of x (M, D), predicted by the fold that did not train on
    it. Folds split the pair ids ``pairs`` (M,) (shuffled with ``seed``), never a pair. Returns (M,)."""
    unique = np.unique(pairs)
    if len(unique) < 2:
        raise WmlabError(f"the plausibility test needs at least 2 trajectory pairs, got {len(unique)}")
    order = np.random.default_rng(seed).permutation(unique)
    fold_of_pair = dict(zip(order.tolist(), (np.arange(len(order)) % min(folds, len(order))).tolist()))
    fold = np.array([fold_of_pair[p] for p in pairs.tolist()])
    scores = np.zeros(len(x))
    for k in range(fold.max() + 1):
        test = fold == k
        try:
            probabilities = [
                model.fit(x[~test], labels[~test]).predict_proba(x[test])[:, 1]
                for model in classifier_ensemble(ensemble, seed)
            ]
        except ValueError as e:  # e.g. the MLP's 20% early-stopping split of a tiny fold
            raise WmlabError(
                f"the {ensemble!r} classifier ensemble cannot fit {len(unique)} trajectory pairs ({e}); "
                "record more episodes or lower --stride to get more pairs"
            ) from None
        scores[test] = np.mean(probabilities, 0)
    return scores


def bootstrap_auc(scores: np.ndarray, labels: np.ndarray, reps: int = 500, seed: int = 0) -> dict[str, float]:
    """AUC of (scores, labels) (M,), and the mean and 95% percentile interval of ``reps`` bootstrap resamples of the
    (prediction, label) pairs (resamples holding one class only are redrawn)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    values = []
    while len(values) < reps:
        idx = rng.integers(0, len(scores), len(scores))
        if labels[idx].min() != labels[idx].max():
            values.append(roc_auc_score(labels[idx], scores[idx]))
    values = np.array(values)
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "mean": float(values.mean()),
        "low": float(np.percentile(values, 2.5)),
        "high": float(np.percentile(values, 97.5)),
    }


def plausibility_auc(
    original: np.ndarray,
    perturbed: np.ndarray,
    folds: int = 5,
    reps: int = 500,
    ensemble: str = "fast",
    seed: int = 0,
) -> dict[str, float]:
    """How well an ensemble tells perturbed trajectories from their originals: (N, ...) each, row i of one paired
    with row i of the other. Returns auc, bootstrap mean, low, high."""
    original, perturbed = np.asarray(original), np.asarray(perturbed)
    if original.shape != perturbed.shape:
        raise WmlabError(f"original and perturbed trajectories differ in shape: {original.shape} vs {perturbed.shape}")
    n = len(original)
    x = np.concatenate([original.reshape(n, -1), perturbed.reshape(n, -1)]).astype(np.float64)
    labels = np.repeat([0, 1], n)
    pairs = np.tile(np.arange(n), 2)
    scores = out_of_fold_scores(x, labels, pairs, folds, ensemble, seed)
    return bootstrap_auc(scores, labels, reps, seed)


def plot_auc(result: dict[str, Any], path: str | Path) -> Path:
    """AUC with its 95% CI per context dimension, the mean over dimensions as a reference line."""
    dims = result["dimensions"]
    labels = [d["label"] for d in dims]
    means = np.array([d["mean"] for d in dims])
    errors = np.array([[d["mean"] - d["low"], d["high"] - d["mean"]] for d in dims]).T
    fig, ax = pyplot().subplots(figsize=(1.0 * len(dims) + 2, 3.2))
    ax.bar(labels, means, yerr=errors, capsize=3, color="tab:blue", alpha=0.75)
    ax.axhline(means.mean(), color="black", ls="--", lw=1, label=f"mean {means.mean():.2f}")
    ax.axhline(0.5, color="gray", lw=0.6)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("AUC (95% CI)")
    ax.set_title(f"counterfactual plausibility: most influential {result['most_influential_label']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plausibility_analysis(
    run: str | Path,
    m: float = 3.0,
    episodes: int = 10,
    horizon: int = 64,
    stride: int = 100,
    context: Mapping[str, float] | None = None,
    sign: str = "per_trajectory",
    units: str = "sigma",
    latent: str = "mode",
    sigma_source: str = "auto",
    max_trajectories: int = 2000,
    folds: int = 5,
    reps: int = 500,
    ensemble: str = "fast",
    pool: int = 4,
    max_steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """``wmlab analyze plausibility``: AUC per context dimension and the most influential one.

    Writes ``plausibility.json`` and ``plausibility.png`` into ``out`` (default RUN/analysis/plausibility). Pixel
    runs classify decoded images average-pooled by ``pool``. A dimension with sigma 0 (``units=sigma``) is reported
    with AUC 0.5 without fitting (its shift is zero).
    """
    check_choices(sign=sign, units=units, latent=latent)
    if ensemble not in ENSEMBLES:
        raise unknown_name_error("classifier ensemble", ensemble, ENSEMBLES)
    policy = load_run_policy(run)
    kind = require_context(policy.config.variant)
    space = context_space(policy.config.env.name)
    images = needs_images(policy.config)
    rec = record_contexts(policy, [space.complete(context)], episodes, seed, max_steps, images, show_progress)
    sigma = resolve_sigma(rec, sigma_source, policy, max_steps, seed)
    labels = context_labels(rec)
    starts = start_points(rec, horizon, stride, max_starts=max_trajectories, seed=seed)
    offsets = {
        d: perturbation_offsets(len(starts), horizon, m, float(sigma[d]), sign, units, seed + d)
        for d in range(len(sigma))
    }
    live = [d for d in range(len(sigma)) if np.abs(offsets[d]).max() > 0]
    pixel_pool = pool if policy.config.env.modality == "pixels" else 1
    baseline, shifted = trajectories_for_dims(
        policy.agent, rec, starts, live, offsets, horizon, latent, seed, pixel_pool
    )
    dims = []
    with progress_bar("plausibility", len(sigma), "dimensions", show_progress) as advance:
        for d in range(len(sigma)):
            if d in shifted:
                auc = plausibility_auc(baseline, shifted[d], folds, reps, ensemble, seed)
            else:
                auc = {"auc": 0.5, "mean": 0.5, "low": 0.5, "high": 0.5}
            dims.append({"dimension": d, "label": labels[d], "sigma": float(sigma[d]), **auc})
            advance(1, auc=auc["auc"])
    best = int(np.argmax([d["auc"] for d in dims]))
    result = {
        "run": str(run),
        "variant": policy.config.variant,
        "context_kind": kind,
        "context": rec.contexts[0],
        "m": m,
        "units": units,
        "sign": sign,
        "latent": latent,
        "horizon": horizon,
        "trajectories": len(starts),
        "ensemble": ensemble,
        "folds": folds,
        "bootstrap_reps": reps,
        "dimensions": dims,
        "mean_auc": float(np.mean([d["auc"] for d in dims])),
        "most_influential": best,
        "most_influential_label": labels[best],
    }
    out = Path(out) if out is not None else Path(run) / "analysis" / "plausibility"
    plot_auc(result, out / "plausibility.png")
    atomic_write_text(out / "plausibility.json", json.dumps(result, indent=1) + "\n")
    return result
