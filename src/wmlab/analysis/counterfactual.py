"""Counterfactual imagination (spec/dali.md §10.4-§10.5): imagine from real states with one context dimension shifted.

The perturbation convention (§10.4: sigma_d across windows and episodes, c' = c + m sigma_d e_d, held fixed while
imagining) is :mod:`wmlab.analysis.perturbation`. kappa is the inferred c_t for ``dali-*`` and the normalised GT
context for ``crssm-*``; ``crssm-s`` sees its context only through the observation encoder, so its
start states are re-filtered from the episode start with the shifted context.

Baseline and counterfactual use common random numbers (``latent=mode``: the prior mode, or one seeded generator per
chunk for ``latent=sample``), so their difference is caused by the perturbation alone.

    rec = record_contexts(policy, [space.defaults], episodes=4)
    starts = start_points(rec, horizon=64, stride=100)
    base = rollout(policy.agent, rec, starts, base_context(rec, starts), 64)
    shifted = rollout(policy.agent, rec, starts, perturb(base_context(rec, starts), 0, 3 * sigma[0]), 64)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmlab.analysis.context_recording import (
    Recording,
    load_run_policy,
    one_hot_state,
    record_contexts,
    require_context,
)
from wmlab.analysis.perturbation import (
    LATENTS,
    check_choices,
    context_labels,
    perturb,
    perturbation_offsets,
    resolve_sigma,
)
from wmlab.analysis.plots import plot_dimensions, side_by_side
from wmlab.atomic import atomic_write_text
from wmlab.envs.contexts import context_space
from wmlab.envs.registry import make
from wmlab.errors import WmlabError, unknown_name_error
from wmlab.media import write_video
from wmlab.nn.distributions import symexp

#: names of the state-vector entries of each environment
OBS_LABELS: dict[str, list[str]] = {
    "pendulum": ["cos θ", "sin θ", "θ̇"],
    "cartpole": ["cart x", "cart ẋ", "pole θ", "pole θ̇"],
    "ball_in_cup": ["cup x", "cup z", "ball x", "ball z", "cup ẋ", "cup ż", "ball ẋ", "ball ż"],
    "walker": [f"orientation {i}" for i in range(14)] + ["torso height"] + [f"velocity {i}" for i in range(9)],
}


def obs_labels(env: str, dim: int) -> list[str]:
    """Labels of the ``dim`` state entries of ``env`` (generic names when the layout is unknown)."""
    labels = OBS_LABELS.get(env, [])
    return labels if len(labels) == dim else [f"obs {i}" for i in range(dim)]


def needs_images(cfg) -> bool:
    """Whether a run's analyses must record images: a pixel ``crssm-s`` run re-filters its start states from them."""
    return cfg.env.modality == "pixels" and cfg.variant == "crssm-s"


# -- start points and rollouts (§10.5) ------------------------------------------------------------------------------
@dataclass
class Starts:
    """Imagination start points in a recording.

    Args:
        rows: (N,) recording row of s_{t0}; start_rows: (N,) row of the episode's first step; t0: (N,) step index.
        actions: (N, H, A) the recorded actions a_{t0} ... a_{t0+H-1}.
        future: (N, H, D_obs) the real observations o_{t0+1} ... o_{t0+H}.
    """

    rows: np.ndarray
    start_rows: np.ndarray
    t0: np.ndarray
    actions: np.ndarray
    future: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def start_points(
    rec: Recording, horizon: int, stride: int = 100, first: int | None = None, max_starts: int | None = None, seed=0
) -> Starts:
    """t0 = first + i stride (default first = K - 1) while t0 + H < episode length, in every episode; at most
    ``max_starts`` (a seeded random subset)."""
    if horizon < 1 or stride < 1:
        raise WmlabError(f"horizon and stride must be >= 1, got {horizon} and {stride}")
    first = rec.meta["window"] - 1 if first is None else first
    rows, start_rows, t0s = [], [], []
    for _, a, b in rec.episode_bounds():
        for t0 in range(first, b - a - horizon, stride):
            rows.append(a + t0)
            start_rows.append(a)
            t0s.append(t0)
    if not rows:
        raise WmlabError(
            f"no start point: episodes need more than {first + horizon} steps for t0 = {first} and horizon {horizon}; "
            "lower --horizon or record longer episodes"
        )
    rows, start_rows, t0s = np.array(rows), np.array(start_rows), np.array(t0s)
    if max_starts is not None and len(rows) > max_starts:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_starts, replace=False))
        rows, start_rows, t0s = rows[keep], start_rows[keep], t0s[keep]
    ahead = rows[:, None] + np.arange(horizon)[None]
    return Starts(rows, start_rows, t0s, rec.steps["action"][ahead], rec.steps["state"][ahead + 1])


def base_context(rec: Recording, starts: Starts) -> torch.Tensor:
    """kappa_{t0} of every start (N, c) (the inferred c_t0 or the normalised GT context)."""
    require_context(rec.meta["variant"])
    return torch.as_tensor(rec.steps["context"][starts.rows], dtype=torch.float32)


@torch.no_grad()
def refilter(wm, rec: Recording, starts: Starts, context: torch.Tensor, generator: torch.Generator) -> dict:
    """Posterior at t0 of every start, filtered from its episode start with ``context`` (N, c) as the GT input."""
    n = len(starts)
    state = wm.rssm.initial(n)
    action = torch.zeros(n, rec.steps["action"].shape[1])
    key = wm.obs_key
    done = {}
    for t in range(int(starts.t0.max()) + 1):
        rows = starts.start_rows + np.minimum(t, starts.t0)
        obs = torch.as_tensor(rec.steps[key][rows])
        embed = wm.encode({key: obs.float() if key == "state" else obs, "context": context})
        tctx = context if wm.transition_uses_context else None
        state = wm.rssm.obs_step(wm.rssm.img_step(state, action, tctx, generator=generator), embed, None, generator)
        action = torch.as_tensor(rec.steps["action"][rows], dtype=torch.float32)
        for i in np.flatnonzero(starts.t0 == t):
            done[int(i)] = {k: v[i] for k, v in state.items()}
    return {k: torch.stack([done[i][k] for i in range(n)]) for k in ("deter", "stoch")}


@torch.no_grad()
def imagine(
    wm,
    start: dict,
    context: torch.Tensor | None,
    horizon: int,
    actions: torch.Tensor | None = None,
    actor=None,
    latent: str = "mode",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Imagine ``horizon`` steps from ``start`` (N, ...) with the context held fixed (N, c) (or one per step
    (N, H, c)), replaying ``actions`` (N, H, A) open loop or sampling them from ``actor`` (an ActorCritic; it sees
    the context only in the deep variants). Returns head features of s_{t0+1..t0+H} (N, H, F) and actions (N, H, A).
    """
    if latent not in LATENTS:
        raise unknown_name_error("latent", latent, LATENTS)
    state, features, taken = start, [], []
    for k in range(horizon):
        ctx = context if context is None or context.dim() == 2 else context[:, k]
        if actions is not None:
            action = actions[:, k]
        else:
            action = actor.policy(wm.head_features(state, ctx)).sample(generator)
            action = action if actor.discrete else action.clamp(-1, 1)
        tctx = ctx if wm.transition_uses_context else None
        state = wm.rssm.img_step(state, action, tctx, sample=latent == "sample", generator=generator)
        features.append(wm.head_features(state, ctx))
        taken.append(action)
    return torch.stack(features, 1), torch.stack(taken, 1)


@torch.no_grad()
def decode(wm, features: torch.Tensor, obs_dim: int, pool: int = 1) -> np.ndarray:
    """Decoder means of imagined states (N, H, F): state vectors (N, H, D_obs), or images (N, H, S/pool, S/pool, 3)
    in [0, 1] for pixel runs (``pool`` averages pool x pool blocks)."""
    prediction = wm.decode(features)
    if wm.modality == "state":
        return symexp(prediction[..., :obs_dim]).cpu().numpy()
    images = prediction.clamp(0, 1)
    if pool > 1:
        n, h, s = images.shape[:3]
        images = images.reshape(n, h, s // pool, pool, s // pool, pool, 3).mean((3, 5))
    return images.cpu().numpy()


def rollout(
    agent,
    rec: Recording,
    starts: Starts,
    context: torch.Tensor,
    horizon: int,
    policy_actions: bool = False,
    latent: str = "mode",
    seed: int = 0,
    pool: int = 1,
    chunk: int = 256,
) -> dict[str, np.ndarray]:
    """Decoded imagination from every start with ``context`` (N, c) or (N, H, c): ``obs`` (N, H, ...) and ``actions``
    (N, H, A). Recorded actions open loop, or the actor's samples with ``policy_actions``. Chunks of ``chunk``
    starts share seeded generators, so two calls differing only in ``context`` use common random numbers."""
    wm = agent.wm
    obs_dim = rec.steps["state"].shape[1]
    chunk = chunk if wm.modality == "state" else min(chunk, 16)  # decoded images are large
    outputs: dict[str, list] = {"obs": [], "actions": []}
    for c, lo in enumerate(range(0, len(starts), chunk)):
        part = slice(lo, lo + chunk)
        sub = Starts(*(getattr(starts, f)[part] for f in ("rows", "start_rows", "t0", "actions", "future")))
        generator = torch.Generator().manual_seed(seed + c)
        ctx = context[part]
        if wm.variant == "crssm-s":
            start = refilter(wm, rec, sub, ctx if ctx.dim() == 2 else ctx[:, 0], generator)
        else:
            start = one_hot_state(rec.steps["deter"][sub.rows], rec.steps["post_class"][sub.rows], rec.meta["classes"])
        actions = None if policy_actions else torch.as_tensor(sub.actions[:, :horizon], dtype=torch.float32)
        features, taken = imagine(wm, start, ctx, horizon, actions, agent.ac, latent, generator)
        outputs["obs"].append(decode(wm, features, obs_dim, pool))
        outputs["actions"].append(taken.cpu().numpy())
    return {k: np.concatenate(v) for k, v in outputs.items()}


def summary_stats(reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """Mean absolute difference (N, H, ...) -> overall, per imagined step and (state) per observation dimension."""
    diff = np.abs(np.asarray(other, np.float64) - np.asarray(reference, np.float64))
    stats = {
        "mean": float(diff.mean()),
        "per_step": diff.reshape(diff.shape[0], diff.shape[1], -1).mean((0, 2)).tolist(),
    }
    if diff.ndim == 3:
        stats["per_dimension"] = diff.mean((0, 1)).tolist()
    return stats


def counterfactual_analysis(
    run: str | Path,
    dim: int,
    m: float = 3.0,
    episodes: int = 4,
    horizon: int = 64,
    stride: int = 100,
    context: Mapping[str, float] | None = None,
    units: str = "sigma",
    latent: str = "mode",
    sigma_source: str = "auto",
    max_steps: int | None = None,
    videos: int = 3,
    seed: int = 0,
    out: str | Path | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """``wmlab analyze counterfactual``: imagine from real starts with dimension ``dim`` shifted by +m and -m.

    Writes into ``out`` (default RUN/analysis/counterfactual): ``d<dim>.json`` (sigma, offsets, mean absolute
    effects per step and observation dimension, model error against the real future), ``d<dim>_obs.png`` (real,
    baseline, +m, -m per observation dimension for the first start; state runs), ``d<dim>_effect.png`` (mean effect
    per dimension or per step) and, for pixel runs, ``d<dim>.mp4`` ([real | baseline | +m | -m] for ``videos`` starts).
    """
    check_choices(units=units, latent=latent)
    policy = load_run_policy(run)
    kind = require_context(policy.config.variant)
    space = context_space(policy.config.env.name)
    pixels = policy.config.env.modality == "pixels"
    rec = record_contexts(policy, [space.complete(context)], episodes, seed, max_steps, pixels, show_progress)
    sigma = resolve_sigma(rec, sigma_source, policy, max_steps, seed)
    labels = context_labels(rec)
    if not 0 <= dim < len(sigma):
        raise WmlabError(f"--dim {dim} does not exist: this run's context has {len(sigma)} dimensions (0-based)")
    if units == "sigma" and sigma[dim] <= 0:
        raise WmlabError(
            f"sigma of {labels[dim]} is 0 (sigma source {sigma_source!r}): the context does not vary there, so a "
            "shift of m sigma does nothing; use --units abs, or --sigma-source grid"
        )
    starts = start_points(rec, horizon, stride)
    base = base_context(rec, starts)
    offset = float(perturbation_offsets(1, horizon, m, float(sigma[dim]), "fixed", units)[0])
    kwargs = dict(latent=latent, seed=seed)
    baseline = rollout(policy.agent, rec, starts, base, horizon, **kwargs)["obs"]
    plus = rollout(policy.agent, rec, starts, perturb(base, dim, offset), horizon, **kwargs)["obs"]
    minus = rollout(policy.agent, rec, starts, perturb(base, dim, -offset), horizon, **kwargs)["obs"]
    out = Path(out) if out is not None else Path(run) / "analysis" / "counterfactual"
    name = f"d{dim}"
    result: dict[str, Any] = {
        "run": str(run),
        "variant": policy.config.variant,
        "context_kind": kind,
        "dimension": dim,
        "label": labels[dim],
        "context": rec.contexts[0],
        "sigma": sigma.tolist(),
        "m": m,
        "units": units,
        "offset": offset,
        "latent": latent,
        "horizon": horizon,
        "starts": len(starts),
        "effect_plus": summary_stats(baseline, plus),
        "effect_minus": summary_stats(baseline, minus),
    }
    if not pixels:
        result["model_error"] = summary_stats(starts.future, baseline)
        obs = obs_labels(rec.meta["env"], baseline.shape[-1])
        unit = "σ" if units == "sigma" else ""
        series = {
            "real": starts.future[0],
            "baseline": baseline[0],
            f"+{m:g}{unit}": plus[0],
            f"-{m:g}{unit}": minus[0],
        }
        styles = {"real": {"color": "gray", "ls": "--"}, "baseline": {"color": "black"}}
        title = f"{labels[dim]} shifted by ±{offset:.3g} ({kind} context), start t0={starts.t0[0]}"
        plot_dimensions(out / f"{name}_obs.png", series, obs, title=title, styles=styles)
        effect = {
            f"|+{m:g}{unit} - base|": np.abs(plus - baseline).mean(0),
            f"|-{m:g}{unit} - base|": np.abs(minus - baseline).mean(0),
        }
        plot_dimensions(out / f"{name}_effect.png", effect, obs, title=f"mean effect over {len(starts)} starts")
        frames = _state_video(rec.meta["env"], rec.contexts[0], [starts.future, baseline, plus, minus], videos)
        if frames is not None:  # classic-control state runs: imagined states drawn by the env's own renderer
            write_video(out / f"{name}.mp4", frames, fps=10)
            result["video"] = str(out / f"{name}.mp4")
    else:
        shown = min(videos, len(starts))
        truth = rec.steps["image"][starts.rows[:shown, None] + np.arange(1, horizon + 1)[None]]
        clips = [side_by_side([truth[i], baseline[i], plus[i], minus[i]]) for i in range(shown)]
        write_video(out / f"{name}.mp4", np.concatenate(clips), fps=10)
        per_step = {
            "+m": np.abs(plus - baseline).mean((0, 2, 3, 4))[:, None],
            "-m": np.abs(minus - baseline).mean((0, 2, 3, 4))[:, None],
        }
        plot_dimensions(out / f"{name}_effect.png", per_step, ["mean |image difference|"], title=labels[dim])
    atomic_write_text(out / f"{name}.json", json.dumps(result, indent=1) + "\n")
    return result


def trajectories_for_dims(
    agent,
    rec: Recording,
    starts: Starts,
    dims: Sequence[int],
    offsets: Mapping[int, np.ndarray],
    horizon: int,
    latent: str = "mode",
    seed: int = 0,
    pool: int = 1,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Baseline (N, H, ...) and, per dimension d, the trajectories with c' = c + offsets[d] e_d (N, H, ...)."""
    base = base_context(rec, starts)
    baseline = rollout(agent, rec, starts, base, horizon, latent=latent, seed=seed, pool=pool)["obs"]
    shifted = {
        d: rollout(agent, rec, starts, perturb(base, d, offsets[d]), horizon, latent=latent, seed=seed, pool=pool)[
            "obs"
        ]
        for d in dims
    }
    return baseline, shifted


def _state_video(env_name: str, context: Mapping[str, float], series: list[np.ndarray], videos: int):
    """[real | baseline | +m | -m] frames (T, S, 4 S, 3) for the first ``videos`` starts of a state run whose env can
    draw a state observation (``render_state``: cartpole, pendulum); None for the others (DMC)."""
    env = make(env_name, context=dict(context))
    try:
        if not hasattr(env.unwrapped, "render_state"):
            return None
        render = env.unwrapped.render_state
        clips = []
        for i in range(min(videos, len(series[0]))):
            panels = [np.stack([render(obs) for obs in s[i]]) for s in series]
            clips.append(side_by_side(panels))
        return np.concatenate(clips)
    finally:
        env.close()
