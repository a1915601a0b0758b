"""The perturbation convention of the analyses (spec/dali.md §10.4).

sigma_d is the standard deviation of kappa_{t,d} over **all full windows of all recorded episodes** (across windows
and episodes), never over time inside one window: a window's context is a single vector, so its spread over the
window's positions is zero (the release's single-episode scripts computed that zero and their perturbations vanished).
A shift of dimension d by m gives c' = c + m sigma_d e_d (``units=abs``: c + m e_d); the shifted context is held fixed
while imagining (§4.4), or re-drawn in sign at every step with ``sign=per_step`` (the release behaviour).

    sigma = context_sigma(rec.steps["context"], rec.full_windows)      # (c,)
    shifted = perturb(context, dim=2, offset=3 * sigma[2])               # (N, c)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wmlab.analysis.context_recording import Recording, analysis_contexts, record_contexts
from wmlab.envs.contexts import context_space
from wmlab.errors import WmlabError, unknown_name_error

SIGNS = ("per_trajectory", "per_step", "fixed")
UNITS = ("sigma", "abs")
LATENTS = ("mode", "sample")


def check_choices(**choices: str) -> None:
    """Fail fast, before any recording, on an unknown ``sign``, ``units`` or ``latent`` option."""
    valid = {"sign": SIGNS, "units": UNITS, "latent": LATENTS}
    for kind, value in choices.items():
        if value not in valid[kind]:
            raise unknown_name_error(f"{kind} option", value, valid[kind])


def context_labels(rec: Recording) -> list[str]:
    """Names of the context dimensions: c[0..d_c-1] (inferred) or the GT feature names."""
    if rec.meta["context_kind"] == "ground-truth":
        return list(rec.meta["feature_names"])
    return [f"c[{i}]" for i in range(rec.steps["context"].shape[1])]


def context_sigma(context: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """sigma_d of every context dimension over all rows: context (..., c), one vector per window (any leading shape:
    steps, or episodes x windows), optional mask (...) selecting the full windows. Returns (c,)."""
    context = np.asarray(context, np.float64)
    rows = context.reshape(-1, context.shape[-1])
    if mask is not None:
        rows = rows[np.asarray(mask, bool).reshape(-1)]
    if len(rows) < 2:
        raise WmlabError(f"sigma needs at least 2 context windows, got {len(rows)}; record more or longer episodes")
    return rows.std(0)


def grid_gt_sigma(env: str) -> np.ndarray:
    """sigma of the normalised GT context over the evaluation grid (``sigma_source=grid`` for ``crssm-*``). (F,)."""
    space = context_space(env)
    return np.stack([space.normalize(space.complete(g.context)) for g in space.evaluation_grid()]).std(0)


def resolve_sigma(
    rec: Recording, source: str = "auto", policy=None, max_steps: int | None = None, seed: int = 0
) -> np.ndarray:
    """sigma (c,) from ``source``: ``recording`` (full windows of ``rec``), ``grid`` (pooled over the evaluation grid:
    the GT grid for ``crssm-*``, one recorded episode per grid context for ``dali-*``), a path to a saved
    :class:`Recording`, or ``auto`` (``recording`` for dali-*, ``grid`` for crssm-*)."""
    if source == "auto":
        source = "grid" if rec.meta["context_kind"] == "ground-truth" else "recording"
    if source == "recording":
        return context_sigma(rec.steps["context"], rec.full_windows)
    if source == "grid":
        if rec.meta["context_kind"] == "ground-truth":
            return grid_gt_sigma(rec.meta["env"])
        if policy is None:
            raise WmlabError("sigma_source=grid for an inferred context needs the run's policy to record the grid")
        grid = record_contexts(policy, analysis_contexts(rec.meta["env"], "grid"), 1, seed, max_steps)
        return context_sigma(grid.steps["context"], grid.full_windows)
    path = Path(source)
    if path.suffix == ".npz":
        other = Recording.load(path)
        same = ("env", "variant", "seed", "checkpoint_step")
        if any(other.meta.get(k) != rec.meta.get(k) for k in same) or "context" not in other.steps:
            raise WmlabError(
                f"{path} records another run or checkpoint ({', '.join(f'{k}={other.meta.get(k)}' for k in same)}); "
                "take sigma from a recording of this run's newest checkpoint (`wmlab analyze context RUN`)"
            )
        return context_sigma(other.steps["context"], other.full_windows)
    raise unknown_name_error("sigma source", source, ("auto", "recording", "grid", "PATH.npz"))


def perturbation_offsets(
    n: int, horizon: int, m: float, sigma_d: float, sign: str = "per_trajectory", units: str = "sigma", seed: int = 0
) -> np.ndarray:
    """Offsets added to one context dimension: m sigma_d (``units=sigma``) or m (``abs``) with a random sign per
    trajectory (N,), per imagined step (N, H) (``per_step``, the release behaviour) or m's own sign (``fixed``)."""
    if units not in UNITS:
        raise unknown_name_error("perturbation unit", units, UNITS)
    scale = m * (sigma_d if units == "sigma" else 1.0)
    rng = np.random.default_rng(seed)
    if sign == "per_trajectory":
        return rng.choice([-1.0, 1.0], n) * scale
    if sign == "per_step":
        return rng.choice([-1.0, 1.0], (n, horizon)) * scale
    if sign == "fixed":
        return np.full(n, scale)
    raise unknown_name_error("perturbation sign", sign, SIGNS)


def perturb(context: torch.Tensor, dim: int, offset: np.ndarray | float) -> torch.Tensor:
    """c' = c + offset e_dim. context (N, c); offset scalar, (N,) or (N, H). Returns (N, c) or (N, H, c)."""
    if not 0 <= dim < context.shape[-1]:
        raise WmlabError(
            f"context dimension {dim} does not exist; this run has {context.shape[-1]} (0 to {context.shape[-1] - 1})"
        )
    offset = torch.as_tensor(np.asarray(offset, np.float32), device=context.device)
    if offset.dim() == 2:
        context = context[:, None].expand(-1, offset.shape[1], -1)
    shift = torch.zeros_like(context)
    shift[..., dim] = offset if offset.dim() else offset.expand(shift.shape[:-1])
    return context + shift
