"""Offline training of a latent world model on a feature cache (spec/latent_actions.md §6.9-§6.10, §6.14).

One AdamW per module group (predictor, action encoder or IDM + W_down), all stepping every iteration, no schedule.
Batches come from seeded per-epoch permutations of the training windows, so a resumed run draws exactly the batches
the uninterrupted run would have drawn. Checkpoints are atomic; re-running the same command resumes.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from wmlab.config import to_dict
from wmlab.data.features import FeatureCache, FeatureWindows
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError
from wmlab.latent.metrics import swap_score
from wmlab.latent.world_model import LatentModelConfig, LatentWorldModel
from wmlab.locks import exclusive_writer
from wmlab.nn.vq import dead_code_rate, perplexity
from wmlab.progress import progress_bar, say, start_line
from wmlab.runs import Checkpointer, MetricLogger, RunDir, open_run, seed_everything, truncate_metrics


@dataclass
class LatentDataConfig:
    path: str = "data/pusht"  #: the episode store
    features: str = "dinov2-224"  #: feature cache name under <path>/features/ (``state`` for the state encoder)
    pool: int = 1  #: average-pool the patch grid k x k when reading the cache


@dataclass
class LatentTrainConfig:
    batch_size: int = 64  #: global batch
    max_steps: int = 162_700  #: 10 epochs of the 10k subset
    lr_predictor: float = 5e-5
    lr_action_encoder: float = 2e-4
    lr_idm: float = 2.5e-5  #: IDM + W_down (+ VQ)
    weight_decay: float = 0.01
    log_every: int = 100
    checkpoint_every: int = 2000
    latent_stats_windows: int = 50_000  #: train windows summarised into latent-action statistics at the end
    device: str = "auto"
    #: bf16: autocast the forward pass's matrix products (loss, parameters and AdamW state stay float32)
    precision: Literal["fp32", "bf16"] = "fp32"


@dataclass
class LatentConfig:
    seed: int = 0
    data: LatentDataConfig = field(default_factory=LatentDataConfig)
    model: LatentModelConfig = field(default_factory=LatentModelConfig)
    train: LatentTrainConfig = field(default_factory=LatentTrainConfig)


RESUMABLE_KEYS = ("train.max_steps", "train.log_every", "train.checkpoint_every", "train.device", "train.precision")


def open_windows(cfg: LatentConfig, split: str) -> FeatureWindows:
    store = EpisodeStore.open(cfg.data.path)
    cache = FeatureCache(Path(cfg.data.path) / "features" / cfg.data.features)
    pool = cfg.data.pool if cfg.data.pool > 1 else None
    windows = FeatureWindows(store, cache, split, cfg.model.history, cfg.model.frameskip, pool)
    if len(windows) == 0:
        raise WmlabError(
            f"the {split} split of {cfg.data.path} has no window of {cfg.model.history + 1} frames at "
            f"frameskip {cfg.model.frameskip}: episodes are too short"
        )
    return windows


def batch_indices(num_windows: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """The window indices of global step ``step``: consecutive slices of a fresh seeded permutation per epoch."""
    per_epoch = max(1, num_windows // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_windows)
    return order[position * batch_size : (position + 1) * batch_size]


def collate(windows: FeatureWindows, indices: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    items = [windows[int(i)] for i in indices]
    return {k: torch.as_tensor(np.stack([item[k] for item in items]), device=device) for k in ("tokens", "actions")}


def make_optimizers(model: LatentWorldModel, t: LatentTrainConfig) -> dict[str, torch.optim.Optimizer]:
    def adamw(module: torch.nn.Module, lr: float) -> torch.optim.AdamW:
        return torch.optim.AdamW(
            [p for p in module.parameters() if p.requires_grad], lr=lr, weight_decay=t.weight_decay
        )

    if model.cfg.variant == "action":
        conditioning = {"action_encoder": adamw(model.action_encoder, t.lr_action_encoder)}
    else:
        conditioning = {"idm": adamw(model.latent_actions, t.lr_idm)}
    return {"predictor": adamw(model.predictor, t.lr_predictor), **conditioning}


def train_step(
    model: LatentWorldModel,
    optimizers: dict[str, torch.optim.Optimizer],
    batch: dict[str, torch.Tensor],
    step: int,
    precision: str = "fp32",
    world: int = 1,
) -> dict[str, torch.Tensor]:
    """One update of every module group on a batch (tokens (B, h+1, P, E), actions (B, h+1, fs*2)); returns the
    loss parts. ``precision="bf16"`` autocasts the forward pass; the loss is reduced in float32 and parameters,
    gradients and optimiser state stay float32. Under data parallelism (``world`` > 1) gradients are averaged."""
    with torch.autocast(batch["tokens"].device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss, parts = model.loss(batch["tokens"], batch["actions"], step)
    for optimizer in optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if world > 1:
        _average_gradients(model, world)
    for optimizer in optimizers.values():
        optimizer.step()
    return parts


@torch.no_grad()
def latent_action_statistics(model: LatentWorldModel, windows: FeatureWindows, limit: int, device) -> dict:
    """Per-dimension mean and std of the latent actions (z_q for la-vq) over up to ``limit`` train windows."""
    model.eval()
    chosen = np.random.default_rng(0).permutation(len(windows))[:limit]
    values = []
    for start in range(0, len(chosen), 256):
        batch = collate(windows, chosen[start : start + 256], device)
        conditioning, _ = model.conditioning(batch["tokens"], batch["actions"])
        values.append(conditioning[:, 0].cpu())
    model.train()
    latents = torch.cat(values)
    return {"mean": latents.mean(0).tolist(), "std": latents.std(0).tolist(), "windows": len(chosen)}


class TrainingDiagnostics:
    """Spec §10.5 in the run's JSONL: swap score and shuffle delta on the first 5 batches after every 100-step
    boundary (a batch is bad if shuffle_delta < 0.05 or swap_score > 0.65; 5 bad in a row flag the run), codebook
    perplexity every 200 steps over the last 200 batches, dead-code rate every 1000 steps over the last 1000."""

    def __init__(self, model: LatentWorldModel):
        self.bad_in_a_row = 0
        quantizer = getattr(getattr(model, "latent_actions", None), "quantizer", None)
        self.codes = quantizer.num_codes if quantizer is not None else 0
        self.history: list[torch.Tensor] = []  # per-batch code counts, newest last (at most 1000)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to flag and count exactly as an uninterrupted one."""
        return {"bad_in_a_row": self.bad_in_a_row, "history": torch.stack(self.history) if self.history else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bad_in_a_row = int(state["bad_in_a_row"])
        self.history = list(state["history"]) if state["history"] is not None else []

    @torch.no_grad()
    def observe(self, step: int, model: LatentWorldModel, batch: dict, parts: dict, logger: MetricLogger) -> None:
        if self.codes and "counts" in parts:
            self.history = (self.history + [parts["counts"].cpu()])[-1000:]
        record: dict[str, float] = {}
        if (step - 1) % 100 < 5:  # the first 5 batches after a 100-step boundary
            was_training = model.training
            model.eval()
            tokens, actions = batch["tokens"], batch["actions"]
            h = model.cfg.history
            conditioning, _ = model.conditioning(tokens, actions)
            source, target, cond = tokens[:, :h], tokens[:, 1 : h + 1], conditioning[:, :h]
            generator = torch.Generator().manual_seed(step)
            base = F.mse_loss(model.predict(source, cond), target).item()
            shuffled = F.mse_loss(model.predict(source, cond[torch.randperm(len(cond), generator=generator)]), target)
            record["diag/shuffle_delta"] = (shuffled.item() - base) / (base + 1e-8)
            record["diag/swap_score"] = swap_score(
                model, source.flatten(0, 1), cond.flatten(0, 1), target.flatten(0, 1), generator
            )
            bad = record["diag/shuffle_delta"] < 0.05 or record["diag/swap_score"] > 0.65
            self.bad_in_a_row = self.bad_in_a_row + 1 if bad else 0
            record["diag/flagged"] = float(self.bad_in_a_row >= 5)
            model.train(was_training)
        if self.codes and step % 200 == 0 and self.history:
            record["diag/perplexity"] = perplexity(torch.stack(self.history[-200:]).sum(0))
        if self.codes and step % 1000 == 0 and self.history:
            record["diag/dead_code_rate"] = dead_code_rate(torch.stack(self.history).sum(0))
        if record:
            logger.log(step, record)


def _start_line(
    run: RunDir,
    cfg: LatentConfig,
    resumed: bool,
    state: dict[str, Any] | None,
    step: int,
    saved: dict[str, Any],
    logged_until: int,
) -> str:
    """The one line printed at start: the run, and for a resume exactly how it differs from an uninterrupted run."""
    old = "this checkpoint predates saved log state: the first logged averages cover only steps after it"
    return start_line(
        f"train latent: variant {cfg.model.variant}, data {cfg.data.path} ({cfg.data.features}), run {run.path}",
        "steps",
        cfg.train.max_steps,
        step if state is not None else None,
        resumed,
        logged_until,
        "trained again on the same batches",
        [] if saved or state is None else [old],
    )


def distributed() -> tuple[int, int]:
    """(rank, world size). Under ``torchrun`` (WORLD_SIZE > 1) the process group is created here: NCCL on GPUs,
    gloo on CPUs."""
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _average_gradients(model: torch.nn.Module, world: int) -> None:
    """Mean of the per-process gradients = the gradient of the global batch (equal shards)."""
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def train_latent(cfg: LatentConfig, run_path: str | Path, show_progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a latent world model in ``run_path``; returns the final step and losses.

    Under ``torchrun --nproc_per_node=K`` every process takes a 1/K shard of each global batch and gradients are
    averaged, which equals one process on the global batch; only rank 0 writes logs and checkpoints. Another
    process training the same run folder at the same time is refused (:mod:`wmlab.locks`).
    """
    writer = os.environ.get("RANK", "0") == "0"  # the only process that writes the run folder
    with exclusive_writer(run_path, "run") if writer else nullcontext():
        return _train_latent(cfg, run_path, show_progress)


def _train_latent(cfg: LatentConfig, run_path: str | Path, show_progress: bool) -> dict[str, Any]:
    rank, world = distributed()
    t = cfg.train
    if t.batch_size % world:
        raise WmlabError(f"train.batch_size={t.batch_size} must divide by the {world} processes")
    windows = open_windows(cfg, "train")  # a missing dataset or cache fails before the run directory is created
    run, resumed = open_run(run_path, cfg, RESUMABLE_KEYS) if rank == 0 else (RunDir(run_path), None)
    if world > 1:  # the other ranks learn from rank 0 whether this is a resume
        flag = [resumed]
        dist.broadcast_object_list(flag, src=0)
        resumed = flag[0]
    seed_everything(cfg.seed)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(
        f"cuda:{local_rank}"
        if t.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if t.device == "auto"
        else t.device
    )
    tokens, dim = windows[0]["tokens"].shape[1:]
    model = LatentWorldModel(cfg.model, tokens, dim, cfg.seed).to(device).train()
    optimizers = make_optimizers(model, t)
    checkpointer = Checkpointer(run.checkpoints_dir)
    state = checkpointer.load_latest() if resumed else None
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        step = state["step"]
    # the logging window and diagnostics in progress at the checkpoint (absent from older checkpoints)
    saved = state.get("logging", {}) if state is not None else {}
    if rank == 0:
        logged_until = truncate_metrics(run.metrics_path, step)
        say(_start_line(run, cfg, resumed, state, step, saved, logged_until), show_progress)
    cache_meta = FeatureCache(Path(cfg.data.path) / "features" / cfg.data.features).meta
    sums: dict[str, float] = dict(saved.get("sums", {}))
    count = int(saved.get("count", 0))
    diagnostics = TrainingDiagnostics(model)
    if "diagnostics" in saved:
        diagnostics.load_state_dict(saved["diagnostics"])

    def save(extra: dict | None = None) -> None:
        if rank != 0:
            return
        checkpointer.save(
            step,
            {
                "model": model.state_dict(),
                "step": step,
                "logging": {"sums": dict(sums), "count": count, "diagnostics": diagnostics.state_dict()},
                "config": to_dict(cfg),
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "statistics": {"action_mean": windows.action_mean.tolist(), "action_std": windows.action_std.tolist()},
                "encoder": cache_meta["encoder"],
                "dataset": cache_meta["fingerprint"],
                "token_shape": [int(tokens), int(dim)],
                **(extra or {}),
            },
        )

    metrics: dict[str, float] = {}
    with ExitStack() as stack:
        logger = stack.enter_context(MetricLogger(run)) if rank == 0 else None
        title = f"train latent {cfg.model.variant}"
        bar = stack.enter_context(progress_bar(title, t.max_steps, "steps", show_progress and rank == 0))
        bar(step)
        clock, clock_step = time.perf_counter(), step
        while step < t.max_steps:
            # contiguous shards: joined in rank order they are the global batch (the VQ re-seeds by position)
            shard = t.batch_size // world
            indices = batch_indices(len(windows), t.batch_size, step, cfg.seed)[rank * shard : (rank + 1) * shard]
            batch = collate(windows, indices, device)
            parts = train_step(model, optimizers, batch, step, t.precision, world)
            step += 1
            count += 1
            for key, value in parts.items():
                if value.dim() == 0:  # scalars; code counts feed the diagnostics
                    sums[key] = sums.get(key, 0.0) + float(value)
            # the last step always logs, off schedule: it keeps the running averages, so a longer run resumed from
            # here logs what an uninterrupted one would
            on_schedule = step % t.log_every == 0
            log_now = on_schedule or step == t.max_steps
            if log_now:
                now = time.perf_counter()
                metrics = {f"train/{k}": v / count for k, v in sums.items()}
                metrics["perf/steps_per_s"] = (step - clock_step) / (now - clock)
                if logger is not None:
                    logger.log(step, metrics)
                if on_schedule:
                    clock, clock_step, count = now, step, 0
                    sums.clear()
            if logger is not None:
                diagnostics.observe(step, model, batch, parts, logger)
            if step % t.checkpoint_every == 0:
                save()
            stats = {"loss": float(parts["latent_pred_loss"])}
            if log_now:
                stats["steps/s"] = round(metrics["perf/steps_per_s"], 2)
            bar(1, line=log_now, **stats)
    extra = {}
    if cfg.model.variant != "action" and rank == 0:
        extra["latent_statistics"] = latent_action_statistics(model, windows, t.latent_stats_windows, device)
    save(extra)
    if world > 1:
        dist.barrier()
    return {"step": step, **metrics}
