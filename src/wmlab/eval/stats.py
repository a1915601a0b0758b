"""Aggregate statistics of normalised scores with rliable semantics (spec/dali.md §9.5-§9.6).

Score matrices have shape (runs, tasks). Confidence intervals come from rliable's stratified bootstrap (runs are
resampled with replacement independently within each task column), percentile intervals.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from rliable import library, metrics

METRICS = ("iqm", "median", "mean", "optimality_gap")


def aggregate(scores: np.ndarray) -> np.ndarray:
    """[IQM, median, mean, optimality gap] of a (runs, tasks) score matrix (rliable definitions)."""
    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores, 1.0),
        ]
    )


def interval_estimates(matrices: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Point estimates and 95% stratified-bootstrap CIs of every metric for each method's (runs, tasks) matrix.

    Returns {method: {metric: {"value": v, "low": lo, "high": hi}}}.
    """
    np.random.seed(seed)  # rliable's bootstrap draws from NumPy's global generator
    points, intervals = library.get_interval_estimates(dict(matrices), aggregate, reps=reps)
    return {
        method: {
            name: {
                "value": float(points[method][i]),
                "low": float(intervals[method][0, i]),
                "high": float(intervals[method][1, i]),
            }
            for i, name in enumerate(METRICS)
        }
        for method in matrices
    }


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, float]:
    """P(X > Y): Mann-Whitney statistic per task averaged over tasks, with a stratified-bootstrap 95% CI.

    x: (runs_x, tasks), y: (runs_y, tasks) on the same task columns.
    """
    np.random.seed(seed)
    pairs = {"pair": (x, y)}
    points, intervals = library.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps)
    return {
        "value": float(np.squeeze(points["pair"])),
        "low": float(intervals["pair"][0].squeeze()),
        "high": float(intervals["pair"][1].squeeze()),
    }
