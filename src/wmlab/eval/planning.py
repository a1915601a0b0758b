"""Goal-reaching evaluation of a trained latent world model on PushT (spec/latent_actions.md §7.6, §8, §9).

For every target (eval/goals.py) the current and goal observations are encoded once with the run's own frozen
encoder, a planner (wmlab.planning, which sees only a cost function) searches the decision variables of the variant,
the plan becomes real actions (denormalised for ``action``; rolled out and decoded by the action decoder for ``la``
and ``la-vq``) and runs in the simulator, open loop or in a bounded MPC loop. Success is measured under both rules.

    result = evaluate_planning("runs/la-vq", build_config(PlanConfig, "plan", "state"))

Results go to ``RUN/plans/<planner>-<open|mpc>-seed<k>-n<evals>.json`` with the calibration rows (null plan,
replay) on the same targets, and videos of executed versus planned (imagined) rollouts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from wmlab.atomic import atomic_write_text
from wmlab.config import to_dict
from wmlab.data.trajectories import EpisodeStore
from wmlab.encoders.pooling import pool_tokens
from wmlab.encoders.registry import encoder_from_metadata
from wmlab.envs.pusht import PushT
from wmlab.errors import WmlabError
from wmlab.eval.goals import Targets, calibration_rows, execute, load_or_sample_targets, outcomes, summarize
from wmlab.latent.decoder import decode_plan, denormalise_macro, load_decoder, world_model_fingerprint
from wmlab.latent.run import load_latent
from wmlab.latent.world_model import LatentWorldModel
from wmlab.media import write_video
from wmlab.planning import (
    BoxSpace,
    CategoricalSpace,
    CEMConfig,
    DiscreteCEMConfig,
    GDConfig,
    MPPIConfig,
    PlanResult,
    goal_mse,
    make_planner,
    shift_warm_start,
)
from wmlab.progress import progress_bar, say

#: planners each variant supports (spec §2); other pairs are user errors
COMPATIBLE = {"action": ("cem", "mppi", "gd"), "la": ("cem", "mppi", "gd"), "la-vq": ("discrete-cem",)}


@dataclass
class PlanConfig:
    planner: Literal["cem", "discrete-cem", "mppi", "gd"] = "cem"
    evals: int = 100  #: evaluation instances (targets)
    seed: int = 0  #: target draw and planner generators
    goal_horizon: int = 5  #: goal distance in macro steps (x frameskip env steps)
    horizon: int = 5  #: H, macro steps per plan
    objective: Literal["last", "all"] = "last"
    batch: int = 25  #: instances planned together (memory: batch x samples x (H+1) x P x E floats)
    mpc: bool = False  #: replan after n_exec macro steps, at most max_iter times (open loop otherwise)
    max_iter: int = 10
    n_exec: int = 5
    stop_cost: Optional[float] = None  #: MPC: an instance stops once its planned cost is below this (model-only)
    videos: int = 4  #: instances with a video
    device: str = "auto"
    #: bf16: autocast the rollouts inside the planner's cost (costs are compared in float32); fp32 plans exactly
    precision: Literal["fp32", "bf16"] = "fp32"
    cem: CEMConfig = field(default_factory=CEMConfig)
    discrete_cem: DiscreteCEMConfig = field(default_factory=DiscreteCEMConfig)
    mppi: MPPIConfig = field(default_factory=MPPIConfig)
    gd: GDConfig = field(default_factory=GDConfig)


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


class LatentGoalProblem:
    """A trained latent world model seen as a planning problem: encoders, decision space, cost and plan -> px.

    Args:
        model: the world model (eval mode); checkpoint: its checkpoint (encoder metadata, statistics, latents).
        decoder: the action decoder for ``la`` / ``la-vq`` (None for ``action``); pool: token pooling factor.
    """

    def __init__(
        self,
        model: LatentWorldModel,
        checkpoint: dict[str, Any],
        decoder: torch.nn.Module | None,
        pool: int,
        device: torch.device,
    ):
        self.model, self.decoder, self.pool, self.device = model.to(device), decoder, pool, device
        self.variant = model.cfg.variant
        self.frameskip = model.cfg.frameskip
        self.encoder = encoder_from_metadata(checkpoint["encoder"], device)
        stats = checkpoint["statistics"]
        self.action_mean = np.asarray(stats["action_mean"], np.float32)
        self.action_std = np.asarray(stats["action_std"], np.float32)
        self.latent_statistics = checkpoint.get("latent_statistics")
        if decoder is not None:
            decoder.to(device)

    # -- observations -> tokens -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, states: np.ndarray, frames: np.ndarray | None) -> torch.Tensor:
        """states (n, 5) and frames (n, S, S, 3) uint8 -> tokens (n, P, E) as the feature cache holds them."""
        if getattr(self.encoder, "input_kind", "image") == "state":
            tokens = self.encoder.encode(np.asarray(states, np.float32)[:, :5])
        else:
            if frames is None:
                raise WmlabError("this run's encoder reads images: render the frames to plan")
            tokens = self.encoder.encode(frames)
        tokens = tokens.to(self.device, torch.float32)
        return pool_tokens(tokens, self.pool) if self.pool > 1 else tokens

    @property
    def needs_frames(self) -> bool:
        return getattr(self.encoder, "input_kind", "image") != "state"

    # -- decision variables -----------------------------------------------------------------------------------------
    def space(self) -> BoxSpace | CategoricalSpace:
        if self.variant == "action":
            return BoxSpace(2 * self.frameskip)
        if self.variant == "la":
            return BoxSpace(self.model.cfg.action_dim)
        quantizer = self.model.latent_actions.quantizer
        return CategoricalSpace(quantizer.num_codes, quantizer.splits)

    def conditioning(self, u: torch.Tensor) -> torch.Tensor:
        """Decision variables (..., H, d) float or (..., H, S) indices -> predictor conditioning (..., H, A)."""
        if self.variant == "action":
            return self.model.action_encoder(u)
        if self.variant == "la":
            return u
        codebook = self.model.latent_actions.quantizer.codebook  # (K, A / S)
        return codebook[u].flatten(-2)

    def rollout(self, current: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """current (B, P, E), decision variables (B, H, ...) -> imagined tokens (B, H + 1, P, E)."""
        return self.model.rollout(current[:, None], self.conditioning(u))

    def cost_function(self, current: torch.Tensor, goal: torch.Tensor, objective: str, precision: str = "fp32"):
        """The planners' cost: candidates (B, N, H, ...) -> goal MSE of the imagined frames (B, N) (``goal_mse``).

        ``precision="bf16"`` autocasts the rollout; the distance to the goal is taken in float32."""

        def cost(candidates: torch.Tensor) -> torch.Tensor:
            batch, samples = candidates.shape[:2]
            flat = candidates.flatten(0, 1)
            with (
                torch.set_grad_enabled(candidates.requires_grad),
                torch.autocast(current.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"),
            ):
                start = current.repeat_interleave(samples, 0)
                predicted = self.rollout(start, flat).unflatten(0, (batch, samples))
            return goal_mse(predicted, goal, objective)

        return cost

    @torch.no_grad()
    def to_pixels(self, current: torch.Tensor, plan: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """A plan (B, H, ...) -> relative env actions (B, H * fs, 2) in px, and its imagined tokens (B, H+1, P, E)."""
        imagined = self.rollout(current, plan)
        if self.variant == "action":
            macro = plan
        else:
            macro = decode_plan(self.decoder, imagined, self.conditioning(plan))  # (B, H, fs * 2), normalised
        px = denormalise_macro(macro.float().cpu().numpy(), self.action_mean, self.action_std)
        return px, imagined

    def empirical_init(self) -> dict[str, torch.Tensor]:
        """Per-dimension mean and std of the training decision variables for ``init=empirical`` (spec §8.3): the
        stored latent-action statistics for ``la``; for ``action``, whose macro actions are normalised with the
        train statistics, mean 0 and std 1 by construction. Empty for ``la-vq`` (discrete)."""
        if self.variant == "action":
            dim = 2 * self.frameskip
            return {"init_mean": torch.zeros(dim, device=self.device), "init_std": torch.ones(dim, device=self.device)}
        if self.variant != "la" or not self.latent_statistics:
            return {}
        return {
            "init_mean": torch.as_tensor(self.latent_statistics["mean"], dtype=torch.float32, device=self.device),
            "init_std": torch.as_tensor(self.latent_statistics["std"], dtype=torch.float32, device=self.device),
        }


def _planner_config(cfg: PlanConfig):
    return {"cem": cfg.cem, "discrete-cem": cfg.discrete_cem, "mppi": cfg.mppi, "gd": cfg.gd}[cfg.planner]


def result_name(cfg: PlanConfig) -> str:
    mode = f"mpc{cfg.max_iter}x{cfg.n_exec}" if cfg.mpc else "open"
    init = {"cem": cfg.cem.init, "mppi": cfg.mppi.init, "gd": cfg.gd.init}.get(cfg.planner)
    planner = cfg.planner if init in (None, "standard", "randn") else f"{cfg.planner}-{init}"
    precision = "" if cfg.precision == "fp32" else f"-{cfg.precision}"
    return f"{planner}-{mode}-seed{cfg.seed}-n{cfg.evals}{precision}"


def _states_to_frames(env: PushT, states: np.ndarray) -> np.ndarray:
    frames = []
    for state in states:
        env.reset(options={"reset_to_state": np.asarray(state[:5], np.float64)})
        frames.append(env.render())
    return np.stack(frames)


def _imagined_states(problem: LatentGoalProblem, tokens: torch.Tensor) -> np.ndarray | None:
    """State-encoder tokens (..., 1, E) back to simulator states (..., 5); None for image encoders."""
    encoder = problem.encoder
    if problem.needs_frames:
        return None
    x = tokens[..., 0, :].cpu().numpy()
    mean, std = encoder.mean.cpu().numpy(), encoder.std.cpu().numpy()
    states = x[..., :5] * std + mean
    if encoder.angle == "sincos":
        states[..., 4] = np.arctan2(x[..., 5], x[..., 4]) % (2 * np.pi)
    return states


def evaluate_planning(run: str | Path, cfg: PlanConfig, show_progress: bool = True) -> dict[str, Any]:
    """Plan to every target with ``cfg`` and report success under both rules (spec §9.4, §9.6)."""
    run = Path(run)
    model, run_cfg, checkpoint = load_latent(run)
    variant = model.cfg.variant
    if cfg.planner not in COMPATIBLE[variant]:
        raise WmlabError(
            f"planner {cfg.planner!r} does not apply to the {variant!r} variant; use one of {COMPATIBLE[variant]}"
        )
    if cfg.mpc and not 1 <= cfg.n_exec <= cfg.horizon:
        raise WmlabError(f"n_exec must lie in [1, horizon={cfg.horizon}], got {cfg.n_exec}")
    device = _device(cfg.device)
    decoder, decoder_meta = None, None
    if variant != "action":
        decoder, decoder_meta = load_decoder(run, fingerprint=world_model_fingerprint(checkpoint))
    problem = LatentGoalProblem(model, checkpoint, decoder, run_cfg.data.pool, device)
    store = EpisodeStore.open(run_cfg.data.path)
    fs = model.cfg.frameskip
    targets, targets_path = load_or_sample_targets(store, cfg.evals, cfg.seed, fs, cfg.goal_horizon, show_progress)
    planner = make_planner(cfg.planner, problem.space(), _planner_config(cfg), **problem.empirical_init())
    per_instance: dict[str, list] = {}
    curves, videos = [], []
    video_env = PushT(obs="both", image_size=store.image_size)
    say(
        f"plan: run {run} ({variant}, checkpoint at step {checkpoint['step']}), planner {cfg.planner}"
        f"{' in MPC' if cfg.mpc else ' open loop'}, {len(targets)} goals in batches of {cfg.batch}",
        show_progress,
    )
    with progress_bar(f"plan {variant} ({cfg.planner})", len(targets), "goals", show_progress) as bar:
        for start in range(0, len(targets), cfg.batch):
            chunk = targets.subset(slice(start, start + cfg.batch))
            generator = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + start)
            record = _plan_chunk(problem, planner, chunk, cfg, generator)
            for key, value in record["per_instance"].items():
                per_instance.setdefault(key, []).extend(np.asarray(value).tolist())
            curves.extend(record["curve"])
            for i in range(min(len(chunk), cfg.videos - len(videos))):
                videos.append(_video(problem, video_env, chunk, record, i))
            bar(len(chunk), line=True, success=float(np.mean(per_instance["success_state"])))
    video_env.close()
    arrays = {k: np.asarray(v) for k, v in per_instance.items()}
    row = summarize(arrays)
    if cfg.mpc:
        curve = np.asarray(curves, bool)  # (n, max_iter): latched success after each iteration
        row["success_state_latched_curve"] = np.maximum.accumulate(curve, axis=1).mean(0).tolist()
        row["success_state_final"] = row["success_state"]
        row["success_state_latched"] = float(curve.any(1).mean())
    result = {
        "run": str(run),
        "variant": variant,
        "step": checkpoint["step"],
        "features": run_cfg.data.features,
        "pool": run_cfg.data.pool,
        "encoder": {k: checkpoint["encoder"].get(k) for k in ("encoder", "weights_source", "size", "angle")},
        "dataset": {"path": run_cfg.data.path, "train_episodes": int(len(store.episode_indices("train")))},
        "decoder": None
        if decoder_meta is None
        else {k: decoder_meta.get(k) for k in ("flags", "train_pairs", "val_rmse", "constant_rmse")},
        "plan": to_dict(cfg),
        "targets": str(targets_path),
        "rule_of_single_number": "success_state (DINO-WM state rule)",
        "result": row,
        "calibration": calibration_rows(targets),
        "per_instance": {k: v.tolist() for k, v in arrays.items()},
    }
    out = run / "plans" / f"{result_name(cfg)}.json"
    video_dir = run / "plans" / result_name(cfg)
    result["videos"] = [str(write_video(video_dir / f"goal{i:03d}.mp4", v, fps=10)) for i, v in enumerate(videos)]
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    result["path"] = str(out)
    return result


def _plan_chunk(
    problem: LatentGoalProblem, planner, chunk: Targets, cfg: PlanConfig, generator: torch.Generator
) -> dict[str, Any]:
    """Plan and execute one batch of targets; returns per-instance outcomes, the MPC curve and video material."""
    n, fs = len(chunk), problem.frameskip
    goal = problem.encode(chunk.goal_states, chunk.goal_frames)
    executed = np.zeros((n, 0, 2))
    states, frames = chunk.init_states[:, None], chunk.init_frames[:, None] if problem.needs_frames else None
    current = problem.encode(chunk.init_states, chunk.init_frames)
    active = np.ones(n, bool)
    warm, curve, first_imagined = None, [], None
    seconds = np.zeros(n)
    iterations = cfg.max_iter if cfg.mpc else 1
    steps = cfg.n_exec if cfg.mpc else cfg.horizon
    for _ in range(iterations):
        begin = time.perf_counter()
        result: PlanResult = planner.plan(
            problem.cost_function(current, goal, cfg.objective, cfg.precision), n, cfg.horizon, generator, warm
        )
        px, imagined = problem.to_pixels(current, result.plan)
        seconds += (time.perf_counter() - begin) / n
        if first_imagined is None:
            first_imagined = imagined
        if cfg.stop_cost is not None:
            active &= result.cost.detach().cpu().numpy() >= cfg.stop_cost
        chunk_px = px[:, : steps * fs] * active[:, None, None]  # stopped instances brake and stay
        executed = np.concatenate([executed, chunk_px], 1)
        # the whole executed sequence is replayed from the exact init state: block velocities carry over chunks
        frames, states = execute(chunk, executed, render=problem.needs_frames)
        final_states = states[:, -1]
        curve.append(outcomes(chunk.goal_states, final_states)["success_state"])
        current = problem.encode(final_states, frames[:, -1] if frames is not None else None)
        warm = shift_warm_start(result.plan, steps) if cfg.mpc else None
    record = outcomes(chunk.goal_states, states[:, -1])
    final_tokens = current
    predicted_last = first_imagined[:, -1]
    record["wm_emb_l2"] = (predicted_last - goal).flatten(1).norm(dim=1).cpu().numpy()
    record["wm_env_emb_l2"] = (predicted_last - final_tokens).flatten(1).norm(dim=1).cpu().numpy()
    record["seconds"] = seconds
    return {
        "per_instance": record,
        "curve": np.stack(curve, 1).tolist(),
        "executed": executed,
        "imagined": first_imagined,
    }


def _video(problem: LatentGoalProblem, env: PushT, chunk: Targets, record: dict[str, Any], i: int) -> np.ndarray:
    """Frames of [executed | imagined (state encoder) | goal] for instance ``i`` of a chunk."""
    frames, _ = env.rollout(chunk.init_states[i], record["executed"][i])
    goal = np.broadcast_to(chunk.goal_frames[i], frames.shape)
    panels = [frames]
    imagined_states = _imagined_states(problem, record["imagined"][i])
    if imagined_states is not None:
        imagined = _states_to_frames(env, imagined_states)  # one frame per macro step
        index = np.minimum(np.arange(len(frames)) // problem.frameskip, len(imagined) - 1)
        panels.append(imagined[index])
    panels.append(goal)
    return np.concatenate(panels, axis=2)
