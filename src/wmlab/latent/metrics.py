"""Validation metrics of a latent world model (spec/latent_actions.md §10), each with mean, std, SE and 95% CI.

All run in eval mode on the val split: ``latent_pred_error`` (teacher-forced one-step MSE), ``vq_commit_loss``,
``rollout_mse`` (open loop from real frames over random horizons), ``swap_score`` (does the prediction follow a
donor's target when given the donor's conditioning? high = the conditioning leaks the target), ``shuffle_delta``
(relative error increase with shuffled conditioning; ~0 = conditioning ignored), codebook ``perplexity`` and
``dead_code_rate``. [lib] ``copy_error`` is the one-step MSE of predicting each frame as a copy of the last one it
follows, on the same windows: a trained predictor should be below it (flagged otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wmlab.data.features import FeatureWindows
from wmlab.latent.world_model import LatentWorldModel
from wmlab.nn.vq import code_counts, dead_code_rate, perplexity

SWAP_PERMUTATIONS = 8


def summary(values: list[float] | np.ndarray) -> dict[str, float]:
    """Mean, std, standard error and the 95% CI mean +- 1.96 SE."""
    values = np.asarray(values, np.float64)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    mean = float(values.mean())
    return {
        "mean": mean,
        "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
        "se": float(se),
        "ci_low": mean - 1.96 * se,
        "ci_high": mean + 1.96 * se,
        "n": int(len(values)),
    }


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.flatten(1), dim=1)


def swap_score(
    model: LatentWorldModel,
    source: torch.Tensor,
    conditioning: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
) -> float:
    """§10.2 on n triples. source / target (n, P, E), conditioning (n, A)."""
    y = _normalise(target)
    scores = []
    for _ in range(SWAP_PERMUTATIONS):
        perm = torch.randperm(len(source), generator=generator)
        predicted = _normalise(model.predict(source[:, None], conditioning[perm][:, None])[:, 0])
        own = (predicted - y).norm(dim=1)
        donor = (predicted - y[perm]).norm(dim=1)
        tau = 1e-3 * own.median()
        scores.append(((own - donor) > tau).float().mean().item())
    return float(np.mean(scores))


@torch.no_grad()
def teacher_forced_metrics(
    model: LatentWorldModel, windows: FeatureWindows, batch_size: int = 64, max_batches: int | None = None
) -> dict[str, Any]:
    """latent_pred_error, copy_error, vq_commit_loss, swap_score, shuffle_delta (+ base / shuffled MSE), perplexity,
    dead rate."""
    model.eval()
    order = np.random.default_rng(0).permutation(len(windows))
    generator = torch.Generator().manual_seed(0)
    h = model.cfg.history
    values: dict[str, list[float]] = {
        k: []
        for k in (
            "latent_pred_error",
            "copy_error",
            "vq_commit_loss",
            "swap_score",
            "shuffle_delta",
            "mse_base",
            "mse_shuffled",
        )
    }
    counts = None
    batches = range(0, len(order), batch_size)
    for b, start in enumerate(batches):
        if max_batches is not None and b >= max_batches:
            break
        items = [windows[int(i)] for i in order[start : start + batch_size]]
        tokens = torch.as_tensor(np.stack([it["tokens"] for it in items]))
        actions = torch.as_tensor(np.stack([it["actions"] for it in items]))
        conditioning, extras = model.conditioning(tokens, actions)
        source, target, cond = tokens[:, :h], tokens[:, 1 : h + 1], conditioning[:, :h]
        base = F.mse_loss(model.predict(source, cond), target).item()
        shuffled = F.mse_loss(model.predict(source, cond[torch.randperm(len(cond), generator=generator)]), target)
        values["latent_pred_error"].append(base)
        values["copy_error"].append(F.mse_loss(source, target).item())  # frame k predicted as frame k - 1
        values["vq_commit_loss"].append(float(extras["commitment"]))
        values["mse_base"].append(base)
        values["mse_shuffled"].append(shuffled.item())
        values["shuffle_delta"].append((shuffled.item() - base) / (base + 1e-8))
        values["swap_score"].append(
            swap_score(model, source.flatten(0, 1), cond.flatten(0, 1), target.flatten(0, 1), generator)
        )
        if "indices" in extras:
            batch_counts = code_counts(extras["indices"], model.latent_actions.quantizer.num_codes)
            counts = batch_counts if counts is None else counts + batch_counts
    out: dict[str, Any] = {k: summary(v) for k, v in values.items() if k != "vq_commit_loss" or counts is not None}
    if counts is not None:
        out["perplexity"] = float(perplexity(counts))
        out["perplexity_norm"] = out["perplexity"] / model.latent_actions.quantizer.num_codes
        out["dead_code_rate"] = float(dead_code_rate(counts))
    return out


@torch.no_grad()
def rollout_mse(model: LatentWorldModel, windows: FeatureWindows, rollouts: int = 600, seed: int = 0) -> dict:
    """§10.1: open-loop rollouts over random val segments; oracle latents inferred pairwise for la / la-vq."""
    model.eval()
    store, fs, h = windows.store, windows.frameskip, model.cfg.history
    episodes = store.episode_indices("val")
    rng = np.random.default_rng(seed)
    h_min = 5 + h
    errors = []
    attempts = 0
    while len(errors) < rollouts:
        attempts += 1
        if attempts > 100 * rollouts:
            break  # no val episode is long enough
        begin, end = store.bounds(int(rng.choice(episodes)))
        length = end - begin
        start = int(rng.integers(0, length - h_min * fs - 1)) if length > h_min * fs + 1 else 0
        max_h = (length - start - 1) // fs
        if max_h <= h_min:
            continue
        horizon = int(rng.integers(h_min, max_h + 1))
        rows = begin + start + fs * np.arange(horizon + 1)
        frames = torch.as_tensor(np.asarray(windows.tokens[rows], np.float32))
        if windows.pool:
            from wmlab.encoders.pooling import pool_tokens

            frames = pool_tokens(frames, windows.pool)
        steps = begin + start + np.arange(horizon * fs)
        rel = (windows.rel_actions[steps] / 100.0 - windows.action_mean) / windows.action_std
        actions = torch.as_tensor(rel.reshape(horizon, fs * 2))[None]
        if model.cfg.variant == "action":
            conditioning = model.action_encoder(actions)
        else:  # pairwise oracle: each e_t from its own (v_t, v_{t+1}), as in training
            pairs = torch.stack([frames[:-1], frames[1:]], 1)
            conditioning = model.latent_actions(pairs)[0][:, 0][None]
        predicted = model.rollout(frames[None, :h], conditioning[:, :horizon])
        errors.append(F.mse_loss(predicted[0, -1], frames[-1]).item())
    return summary(errors) if errors else {"mean": float("nan"), "n": 0}


def validation_metrics(
    model: LatentWorldModel, windows: FeatureWindows, rollouts: int = 600, max_batches: int | None = None
) -> dict[str, Any]:
    """Every metric of spec §10 on the val windows, plus the flags the spec defines."""
    metrics = teacher_forced_metrics(model, windows, max_batches=max_batches)
    metrics["rollout_mse"] = rollout_mse(model, windows, rollouts)
    metrics["flags"] = {
        "leakage (swap_score > 0.65)": metrics["swap_score"]["mean"] > 0.65,
        "conditioning ignored (shuffle_delta < 0.05)": metrics["shuffle_delta"]["mean"] < 0.05,
        "worse than copying the last frame (latent_pred_error > copy_error)": metrics["latent_pred_error"]["mean"]
        > metrics["copy_error"]["mean"],
    }
    if "perplexity_norm" in metrics:
        metrics["flags"]["codebook collapse (perplexity_norm < 0.1)"] = metrics["perplexity_norm"] < 0.1
        metrics["flags"]["dead codes (dead_code_rate > 0.5)"] = metrics["dead_code_rate"] > 0.5
    return metrics
