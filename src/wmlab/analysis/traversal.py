"""Latent traversal under the policy (spec/dali.md §10.7): how imagined behaviour changes along one context dimension.

From the posterior at t0 = K - 1 of a recorded episode, for every m in (-3, ..., 3): c' = c_t0 + m sigma_d e_d (held
fixed), imagine ``horizon`` steps with actions sampled from the actor (the deep variants' actor sees c'; in ``dali-s``
and ``crssm-s`` only the dynamics do) or zero actions (``actions=zero``), and decode. Every m uses the same seeded
generator (common random numbers), so the curves differ only through the context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.analysis.context_recording import Recording, load_run_policy, record_contexts, require_context
from wmlab.analysis.counterfactual import Starts, base_context, needs_images, obs_labels, rollout
from wmlab.analysis.perturbation import check_choices, context_labels, perturb, resolve_sigma
from wmlab.analysis.plots import plot_dimensions, pyplot, save_figure, side_by_side, to_uint8
from wmlab.atomic import atomic_write_text
from wmlab.envs.contexts import context_space
from wmlab.errors import WmlabError, unknown_name_error
from wmlab.media import write_video

#: observation entries plotted by default (spec §10.7): walker torso height and root velocities; ball_in_cup ball
#: position and velocity; cartpole cart position and pole angle; pendulum cos, sin and angular velocity
TRAVERSAL_DIMS: dict[str, list[int]] = {
    "walker": [14, 15, 16],
    "ball_in_cup": [2, 3, 6, 7],
    "cartpole": [0, 2],
    "pendulum": [0, 1, 2],
}
ACTION_MODES = ("policy", "zero")
DEFAULT_MS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


def traversal_start(rec: Recording, horizon: int, episode: int = 0) -> Starts:
    """One start at t0 = K - 1 of ``episode``, with zero actions (N=1, H, A) and the real future that exists."""
    bounds = [(a, b) for e, a, b in rec.episode_bounds() if e == episode]
    if not bounds:
        raise WmlabError(f"episode {episode} is not in the recording")
    a, b = bounds[0]
    t0 = rec.meta["window"] - 1
    if t0 >= b - a:
        raise WmlabError(f"the episode has {b - a} steps, fewer than the window K = {t0 + 1}; record longer episodes")
    future = rec.steps["state"][a + t0 + 1 : min(b, a + t0 + 1 + horizon)]
    actions = np.zeros((1, horizon, rec.steps["action"].shape[1]), np.float32)
    return Starts(np.array([a + t0]), np.array([a]), np.array([t0]), actions, future[None])


def traverse(
    agent,
    rec: Recording,
    start: Starts,
    dim: int,
    offsets: Sequence[float],
    horizon: int,
    actions: str = "policy",
    latent: str = "mode",
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decoded observations (H, ...) and actions (H, A) for each offset of dimension ``dim`` (same seed for all)."""
    if actions not in ACTION_MODES:
        raise unknown_name_error("traversal actions", actions, ACTION_MODES)
    base = base_context(rec, start)
    observations, taken = [], []
    for offset in offsets:
        context = perturb(base, dim, float(offset))
        out = rollout(agent, rec, start, context, horizon, actions == "policy", latent, seed)
        observations.append(out["obs"][0])
        taken.append(out["actions"][0])
    return observations, taken


def _image_strip(path: Path, frames: list[np.ndarray], names: list[str], columns: int = 8) -> Path:
    """Rows = traversal values, columns = evenly spaced imagined steps."""
    steps = np.linspace(0, len(frames[0]) - 1, min(columns, len(frames[0]))).round().astype(int)
    fig, axes = pyplot().subplots(len(frames), len(steps), figsize=(1.2 * len(steps), 1.2 * len(frames)), squeeze=False)
    for row, (clip, name) in enumerate(zip(frames, names)):
        for col, step in enumerate(steps):
            ax = axes[row, col]
            ax.imshow(to_uint8(clip[step]))
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=7)
            if row == 0:
                ax.set_title(f"step {step + 1}", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _default_dims(run: Path, count: int) -> list[int]:
    """The most influential dimension of a previous plausibility test of the run, else every dimension."""
    found = run / "analysis" / "plausibility" / "plausibility.json"
    if found.exists():
        return [int(json.loads(found.read_text())["most_influential"])]
    return list(range(count))


def traversal_analysis(
    run: str | Path,
    dims: Sequence[int] | None = None,
    ms: Sequence[float] = DEFAULT_MS,
    horizon: int = 50,
    episodes: int = 2,
    actions: str = "policy",
    context: Mapping[str, float] | None = None,
    units: str = "sigma",
    latent: str = "mode",
    sigma_source: str = "auto",
    max_steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """``wmlab analyze traversal``: per dimension d, ``d<d>_obs.png`` (selected observation entries per m with the
    real continuation; pixel runs: ``d<d>_strip.png`` and ``d<d>.mp4``), ``d<d>_actions.png`` and ``traversal.json``
    (mean absolute action difference to m = 0 per m) in ``out`` (default RUN/analysis/traversal).

    Args:
        dims: dimensions to traverse (default: the most influential one of a previous plausibility test, else all).
        ms: multiples of sigma (or absolute offsets with ``units=abs``).
        episodes: recorded episodes (sigma uses all; the start is in episode 0).
    """
    check_choices(units=units, latent=latent)
    if actions not in ACTION_MODES:
        raise unknown_name_error("traversal actions", actions, ACTION_MODES)
    policy = load_run_policy(run)
    kind = require_context(policy.config.variant)
    cfg = policy.config
    space = context_space(cfg.env.name)
    rec = record_contexts(
        policy, [space.complete(context)], episodes, seed, max_steps, needs_images(cfg), show_progress
    )
    sigma = resolve_sigma(rec, sigma_source, policy, max_steps, seed)
    labels = context_labels(rec)
    dims = list(dims) if dims else _default_dims(Path(run), len(sigma))
    for d in dims:
        if not 0 <= d < len(sigma):
            raise WmlabError(f"--dim {d} does not exist: this run's context has {len(sigma)} dimensions (0-based)")
    ms = sorted(set(float(m) for m in ms) | {0.0})
    start = traversal_start(rec, horizon)
    out = Path(out) if out is not None else Path(run) / "analysis" / "traversal"
    obs_names = obs_labels(cfg.env.name, rec.steps["state"].shape[1])
    action_names = [f"action {i}" for i in range(rec.steps["action"].shape[1])]
    result: dict[str, Any] = {
        "run": str(run),
        "variant": cfg.variant,
        "context_kind": kind,
        "context": rec.contexts[0],
        "t0": int(start.t0[0]),
        "actions": actions,
        "units": units,
        "latent": latent,
        "horizon": horizon,
        "ms": ms,
        "sigma": sigma.tolist(),
        "dimensions": [],
    }
    for d in dims:
        scale = float(sigma[d]) if units == "sigma" else 1.0
        offsets = [m * scale for m in ms]
        observations, taken = traverse(policy.agent, rec, start, d, offsets, horizon, actions, latent, seed)
        zero = ms.index(0.0)
        names = [f"m={m:+g}" for m in ms]
        entry = {
            "dimension": d,
            "label": labels[d],
            "offsets": offsets,
            "action_difference": {n: float(np.abs(a - taken[zero]).mean()) for n, a in zip(names, taken)},
            "observation_difference": {
                n: float(np.abs(o - observations[zero]).mean()) for n, o in zip(names, observations)
            },
        }
        result["dimensions"].append(entry)
        title = f"{labels[d]} traversal ({kind} context, actions: {actions})"
        plot_dimensions(out / f"d{d}_actions.png", dict(zip(names, taken)), action_names, title=title)
        if cfg.env.modality == "state":
            series = dict(zip(names, observations))
            styles = {}
            if len(start.future[0]):
                series["real (recorded actions)"] = start.future[0]
                styles["real (recorded actions)"] = {"color": "gray", "ls": "--"}
            selected = [i for i in TRAVERSAL_DIMS.get(cfg.env.name, []) if i < len(obs_names)] or None
            plot_dimensions(out / f"d{d}_obs.png", series, obs_names, selected, title, styles)
        else:
            _image_strip(out / f"d{d}_strip.png", observations, names)
            write_video(out / f"d{d}.mp4", side_by_side(observations), fps=10)
    atomic_write_text(out / "traversal.json", json.dumps(result, indent=1) + "\n")
    return result
