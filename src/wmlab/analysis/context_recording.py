"""Per-step context recording (spec/dali.md §10.1): run a trained policy in chosen contexts and keep what it saw.

    policy = load_run_policy("runs/w-dali")
    rec = record_contexts(policy, analysis_contexts("walker", "tsne"), episodes=2)
    rec.save("runs/w-dali/analysis/context/recording.npz")
    x = rec.steps["context"][rec.full_windows]         # inferred c_t at full windows (M, d_c)

Episodes of one context run side by side as a batch (one forward pass per step); episode j of context i is seeded
with ``seed + 1000 * i + j`` as in :mod:`wmlab.eval.grid`. Inferred contexts come from the acting path (the causal
windows of §5.2). The ``context`` field is the context kappa_t each variant conditions on: the inferred c_t for
``dali-*``, the normalised GT context for ``crssm-*``; the ``dreamer`` variant has none (its latent state is still
recorded, as the probe's reference input).

Step fields, N steps over all episodes, stored episode after episode in time order:
    context_id, episode, episode_in_context, t (N,) int; is_first (N,) bool; fill (N,) window fill min(K, t + 1)
    state (N, D_obs) float32 state vector; action (N, A) (one-hot when discrete); reward (N,) for taking a_t
    embed (N, E) float16 observation embedding e_t; context (N, c) kappa_t (absent for ``dreamer``)
    gt (N, F) normalised GT context; deter (N, D) h_t; post_class / prior_class (N, S) int16 class index of the
    posterior sample z_t and of the prior mode z^_t (the prior at h_t); image (N, S, S, 3) uint8 (optional)
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wmlab.atomic import atomic_write
from wmlab.envs.contexts import ContextSpace, context_space
from wmlab.errors import WmlabError, unknown_name_error
from wmlab.progress import progress_bar

#: the contexts of the t-SNE maps (spec §10.3), gravity-like feature first
TSNE_CONTEXTS: dict[str, list[tuple[float, float]]] = {
    "walker": [(0.98, 0.3), (0.98, 1.0), (9.81, 0.3), (9.81, 1.0), (19.6, 0.3), (19.6, 1.0)],
    "ball_in_cup": [(g, s) for g in (9.81, 19.6) for s in (0.09, 0.15, 0.3, 0.54)],
    "cartpole": [(0.98, 0.5), (9.8, 0.5), (19.6, 0.5), (0.98, 0.8), (9.8, 0.8), (19.6, 0.8)],
    "pendulum": [(length, m) for length in (0.3, 1.0, 1.8) for m in (0.3, 1.0)],
}
CONTEXT_SETS = ("tsne", "grid", "default")
SCORED_SETTINGS = ("single_0", "single_1", "double_box")


def require_context(variant: str) -> str:
    """What the analyses perturb for ``variant``: ``inferred`` (dali-*) or ``ground-truth`` (crssm-*).

    Raises a :class:`WmlabError` for ``dreamer``, which conditions on no context at all.
    """
    if variant.startswith("dali"):
        return "inferred"
    if variant.startswith("crssm"):
        return "ground-truth"
    raise WmlabError(
        f"a {variant!r} run has no context to perturb: it never sees one (neither inferred nor ground truth); "
        "run this analysis on a dali-s / dali-d (inferred context) or crssm-s / crssm-d (GT context) run, or use "
        "`wmlab analyze context`, which probes the latent state of every variant"
    )


def analysis_contexts(env: str, which: str = "tsne") -> list[dict[str, float]]:
    """Full context dicts of a named set: ``tsne`` (§10.3, 6-8 contexts), ``grid`` (§8.1) or ``default``."""
    space = context_space(env)
    if which == "tsne":
        if env not in TSNE_CONTEXTS:  # an environment added later: the default and the four expert corners
            from wmlab.envs.contexts import expert_contexts

            return [space.complete(c) for c in expert_contexts(env, "corners")]
        return [space.complete(dict(zip(space.names, values))) for values in TSNE_CONTEXTS[env]]
    if which == "grid":
        return [space.complete(g.context) for g in space.evaluation_grid()]
    if which == "default":
        return [space.defaults]
    raise unknown_name_error("context set", which, CONTEXT_SETS)


def region_of(space: ContextSpace, context: Mapping[str, float], setting: str) -> str | None:
    """Region of ``context`` for an agent trained on ``setting`` (spec §8.2), or None where it is not scored."""
    inside = [f.in_train_range(context[f.name]) for f in space.features]
    changed = tuple(f.name for f in space.features if not f.is_default(context[f.name]))
    if setting in ("single_0", "single_1"):
        index = int(setting[-1])
        if changed != (space.features[index].name,):
            return None
        return "interpolation" if inside[index] else "extrapolation"
    if setting == "double_box":
        return "interpolation" if all(inside) else "extrapolation" if not any(inside) else "mixed"
    return None


def load_run_policy(run: str | Path, mode: str = "sample", device: str = "cpu"):
    """The :class:`~wmlab.dreamer.policy.DreamerPolicy` of the newest checkpoint of a Dreamer run (evaluation mode)."""
    from wmlab.dreamer.policy import load_policy

    return load_policy(run, mode, device)


@dataclass
class Recording:
    """Per-step arrays of recorded episodes (see the module docstring for the fields) and their metadata.

    Args:
        meta: run, env, modality, variant, seed, checkpoint_step, window K, stoch S, classes C, context_kind,
            feature_names, train_contexts, episodes per context, policy mode, changed and regions per context.
        contexts: raw GT context dict of every context id.
        steps: field name -> array with N rows.
    """

    meta: dict[str, Any]
    contexts: list[dict[str, float]]
    steps: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.steps["t"])

    @property
    def full_windows(self) -> np.ndarray:
        """(N,) bool: steps whose context window holds K real tokens (n_t = K)."""
        return self.steps["fill"] >= self.meta["window"]

    def latent(self, kind: str = "posterior") -> np.ndarray:
        """[h_t, z_t] (``posterior``) or [h_t, z^_t] (``prior``) as float32 (N, D + S C)."""
        if kind not in ("posterior", "prior"):
            raise unknown_name_error("latent kind", kind, ("posterior", "prior"))
        classes = self.steps["post_class" if kind == "posterior" else "prior_class"].astype(np.int64)
        onehot = np.eye(self.meta["classes"], dtype=np.float32)[classes].reshape(len(self), -1)
        return np.concatenate([self.steps["deter"].astype(np.float32), onehot], -1)

    def select(self, mask: np.ndarray) -> Recording:
        """The steps where ``mask`` (N,) is true (metadata and contexts unchanged)."""
        return Recording(self.meta, self.contexts, {k: v[mask] for k, v in self.steps.items()})

    def episode_bounds(self) -> list[tuple[int, int, int]]:
        """(episode, start row, stop row) of every episode, in storage order."""
        episode = self.steps["episode"]
        cuts = np.flatnonzero(np.diff(episode)) + 1
        starts = np.concatenate([[0], cuts]).astype(int)
        stops = np.concatenate([cuts, [len(episode)]]).astype(int)
        return [(int(episode[a]), int(a), int(b)) for a, b in zip(starts, stops)]

    def to_dataframe(self, vectors: Sequence[str] = ("context", "gt", "state", "action")):
        """A pandas DataFrame: scalar fields as columns, each listed vector field as ``name_i`` columns."""
        import pandas as pd

        columns: dict[str, np.ndarray] = {}
        for key, value in self.steps.items():
            if value.ndim == 1:
                columns[key] = value
            elif key in vectors:
                for i in range(value.shape[1]):
                    columns[f"{key}_{i}"] = value[:, i]
        return pd.DataFrame(columns)

    def save(self, path: str | Path) -> Path:
        """One compressed ``.npz`` (written atomically) with the metadata as JSON."""
        path = Path(path)
        header = json.dumps({"meta": self.meta, "contexts": self.contexts})

        def write(f) -> None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, __header__=np.array(header), **self.steps)
            f.write(buffer.getvalue())

        atomic_write(path, write)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        path = Path(path)
        if not path.exists():
            raise WmlabError(f"no recording at {path}; write one with `wmlab analyze context RUN`")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["__header__"]))
                steps = {k: data[k] for k in data.files if k != "__header__"}
        except (OSError, ValueError, KeyError) as e:
            raise WmlabError(f"{path} is not a readable context recording ({e}); record it again") from None
        return cls(header["meta"], header["contexts"], steps)


def _state_features(agent, obs: Mapping[str, np.ndarray], policy_state: dict) -> dict[str, np.ndarray]:
    """Embedding, h_t and the class indices of the posterior sample and of the prior mode, one row per env."""
    wm = agent.wm
    keys = [wm.obs_key] + (["context"] if wm.uses_gt else [])
    embed = wm.encode(agent.to_torch({k: obs[k] for k in keys}))
    post = policy_state["rssm"]
    prior_logits = wm.rssm.prior_logits(wm.rssm.img_out(post["deter"])).unflatten(-1, (wm.rssm.stoch_dim, -1))
    return {
        "embed": embed.to(torch.float16).cpu().numpy(),
        "deter": post["deter"].float().cpu().numpy(),
        "post_class": post["stoch"].argmax(-1).to(torch.int16).cpu().numpy(),
        "prior_class": prior_logits.argmax(-1).to(torch.int16).cpu().numpy(),
    }


@torch.no_grad()
def _record_context(policy, context: dict[str, float], episodes: int, seed: int, max_steps: int | None, images: bool):
    """Steps of ``episodes`` episodes in one context, as a list of per-step row dicts (batched over episodes)."""
    from wmlab.envs import make

    agent, cfg = policy.agent, policy.config
    wm = agent.wm
    obs_mode = "both" if images or cfg.env.modality == "pixels" else "state"
    kwargs = dict(obs=obs_mode, context=context, context_obs=True, action_repeat=cfg.env.action_repeat)
    kwargs.update(image_size=cfg.env.image_size, time_limit=max_steps)
    envs = [make(cfg.env.name, seed=seed + j, **kwargs) for j in range(episodes)]
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    window = cfg.context.window
    rows: list[dict[str, np.ndarray]] = []
    try:
        first = [env.reset(seed=seed + j)[0] for j, env in enumerate(envs)]
        obs = {k: np.stack([o[k] for o in first]) for k in first[0]}
        state = agent.initial_policy_state(episodes)
        active, is_first, t = np.ones(episodes, bool), np.ones(episodes, bool), 0
        while active.any():
            onehot, state = agent.act(obs, is_first, state, policy.mode, generator)
            feats = _state_features(agent, obs, state)
            kappa = None
            if wm.infers:
                kappa = state["context"].float().cpu().numpy().copy()
            elif wm.uses_gt:
                kappa = obs["context"].astype(np.float32).copy()
            actions = onehot.argmax(-1) if agent.discrete else onehot
            for j in np.flatnonzero(active):
                o, r, terminated, truncated, _ = envs[j].step(actions[j])
                row = {
                    "episode_in_context": j,
                    "t": t,
                    "is_first": t == 0,
                    "fill": min(window, t + 1),
                    "state": obs["state"][j].copy(),
                    "action": onehot[j].astype(np.float32),
                    "reward": np.float32(r),
                    "gt": obs["context"][j].copy(),
                    **{k: v[j] for k, v in feats.items()},
                }
                if kappa is not None:
                    row["context"] = kappa[j]
                if images:
                    row["image"] = obs["image"][j].copy()
                rows.append(row)
                for k in obs:
                    obs[k][j] = o[k]
                active[j] = not (terminated or truncated)
            is_first[:] = False
            t += 1
    finally:
        for env in envs:
            env.close()
    return rows


def record_contexts(
    policy,
    contexts: Sequence[Mapping[str, float]],
    episodes: int = 2,
    seed: int = 0,
    max_steps: int | None = None,
    images: bool = False,
    show_progress: bool = False,
) -> Recording:
    """Record ``episodes`` episodes of ``policy`` in every context (spec §10.1).

    Args:
        policy: a loaded :class:`~wmlab.dreamer.policy.DreamerPolicy` (:func:`load_run_policy`).
        contexts: (partial) contexts; missing features take their defaults.
        episodes: E episodes per context (spec default 2).
        seed: episode j of context i uses ``seed + 1000 * i + j`` (env reset and policy sampling).
        max_steps: cap on the episode length (None: the environment's own limit).
        images: also keep the rendered images (pixel runs keep them when this is set).
    Returns a :class:`Recording` with N rows, episode after episode.
    """
    if episodes < 1:
        raise WmlabError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise WmlabError(f"max_steps must be >= 1, got {max_steps}")
    cfg = policy.config
    space = context_space(cfg.env.name)
    full = [space.complete(c) for c in contexts]
    if not full:
        raise WmlabError("record at least one context")
    rows: list[dict[str, Any]] = []
    with progress_bar(f"record {len(full)} contexts", len(full), "contexts", show_progress) as advance:
        for i, context in enumerate(full):
            for row in _record_context(policy, context, episodes, seed + 1000 * i, max_steps, images):
                row.update(context_id=i, episode=i * episodes + row["episode_in_context"])
                rows.append(row)
            advance(1)
    rows.sort(key=lambda r: (r["episode"], r["t"]))
    steps = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    wm = policy.agent.wm
    meta = {
        "env": cfg.env.name,
        "modality": cfg.env.modality,
        "variant": cfg.variant,
        "seed": cfg.seed,
        "checkpoint_step": policy.step,
        "window": cfg.context.window,
        "stoch": wm.rssm.stoch_dim,
        "classes": wm.rssm.classes,
        "context_kind": "inferred" if wm.infers else "ground-truth" if wm.uses_gt else None,
        "feature_names": list(space.names),
        "train_contexts": cfg.env.train_contexts,
        "episodes": episodes,
        "mode": policy.mode,
        "record_seed": seed,
        "changed": [[f.name for f in space.features if not f.is_default(c[f.name])] for c in full],
        "regions": [{s: region_of(space, c, s) for s in SCORED_SETTINGS} for c in full],
    }
    return Recording(meta, full, steps)


def one_hot_state(deter: np.ndarray, classes_index: np.ndarray, classes: int, device: str = "cpu") -> dict:
    """An RSSM state (N, ...) from recorded h_t (N, D) and class indices (N, S) (logits are not needed to imagine)."""
    index = torch.as_tensor(classes_index.astype(np.int64), device=device)
    return {
        "deter": torch.as_tensor(deter, dtype=torch.float32, device=device),
        "stoch": F.one_hot(index, classes).float(),
    }
