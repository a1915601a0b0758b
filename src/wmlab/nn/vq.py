"""EMA vector quantiser of the `la-vq` latent-action model (spec/latent_actions.md §6.7-§6.9, §10.4).

* Codebook C (K, D) drawn from a standard normal, a **buffer**: it never gets a gradient and moves only by EMA.
* ``splits`` S: the last dimension S·D is viewed as S vectors of width D that share the one codebook.
* Nearest code by squared Euclidean distance; straight-through output z + sg(z_q - z); commitment loss
  β·mean((sg(z_q) - z)²) over all elements and no codebook loss (the EMA replaces it).
* Two EMA rules: ``corrected`` ([lib] default; bias-corrected, dead codes re-seeded without replacement and their
  statistics reset) and ``reference`` (the fork: no bias correction, Laplace-smoothed counts, dead codes re-seeded
  with replacement on every step and their statistics kept).
* The EMA update runs on every training-mode forward, also during the two-phase warm-up (§6.8), and never in eval
  mode. Under data parallelism, counts and sums are all-reduced and re-seeding draws from the gathered global batch
  with the same generator on every replica, so all replicas keep identical codebooks.

Shapes: z (..., S·D); indices (..., S); counts (K,).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from wmlab.errors import WmlabError, unknown_name_error

RULES = ("corrected", "reference")
LAPLACE_EPS = 1e-6  # the reference rule's smoothing of EMA counts (§6.7)
PERPLEXITY_EPS = 1e-8  # inside the log of §10.4, so that unused codes contribute 0


class VQOutput(NamedTuple):
    """What :meth:`EMAVectorQuantizer.forward` returns.

    Attributes:
        quantized: (..., S·D) (1 - α)·z + α·z_q^st; at α = 1 the values are the selected codes and the gradient
            passes straight through to z.
        indices: (..., S) int64 selected codes.
        loss: () α·β·mean((sg(z_q) - z)²), the commitment term of the training loss (β_eff of §6.8); gradient to z only.
        commit_mse: () mean((z_q - z)²), detached, for logging (the val metric `vq_commit_loss` is β·commit_mse).
        counts: (K,) int64 assignments per code in this call (usage statistics; local, before any all-reduce).
        reseeded: (K,) bool codes re-seeded from the batch by this call's EMA update (all False in eval mode).
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    commit_mse: torch.Tensor
    counts: torch.Tensor
    reseeded: torch.Tensor


class EMAVectorQuantizer(nn.Module):
    """Vector quantiser whose codebook follows an exponential moving average of its assigned vectors.

    Args:
        num_codes: K, codebook size (`vq.num_codes`; `paper` 16, fork final 32).
        code_dim: D, width of one code (32).
        splits: S, vectors per input row sharing the codebook (`codebook_splits`, 1).
        decay: γ, EMA decay (`vq.decay`; `paper` 0.95, fork final 0.99).
        commitment: β, commitment weight (`vq.commitment`; `paper` 0.1, fork final 0.05).
        rule: ``corrected`` (default) or ``reference`` (`vq.rule`).
        dead_threshold: τ_dead; a code is dead when its (bias-corrected or smoothed) EMA count falls below it (1e-3).
        seed: seeds the codebook initialisation and the module's own generator for re-seeding draws; that
            generator's state is saved in the state dict so that a resumed run draws the same codes.
        sync: all-reduce statistics across processes when torch.distributed is initialised with world size > 1.
            Every replica must then call forward in training mode in lockstep; set False to keep replicas independent.
    """

    codebook: torch.Tensor
    ema_count: torch.Tensor
    ema_sum: torch.Tensor
    ema_steps: torch.Tensor

    def __init__(
        self,
        num_codes: int = 16,
        code_dim: int = 32,
        splits: int = 1,
        decay: float = 0.95,
        commitment: float = 0.1,
        rule: str = "corrected",
        dead_threshold: float = 1e-3,
        seed: int = 0,
        sync: bool = True,
    ):
        super().__init__()
        if rule not in RULES:
            raise unknown_name_error("vq.rule", rule, RULES)
        if num_codes < 1 or code_dim < 1 or splits < 1:
            raise WmlabError(f"vq needs num_codes, code_dim and splits >= 1, got {num_codes}, {code_dim}, {splits}")
        if not 0.0 < decay < 1.0:
            raise WmlabError(f"vq.decay must lie in (0, 1), got {decay}")
        if commitment < 0.0 or dead_threshold < 0.0:
            raise WmlabError(f"vq.commitment and the dead threshold must be >= 0, got {commitment}, {dead_threshold}")
        self.num_codes, self.code_dim, self.splits = num_codes, code_dim, splits
        self.decay, self.commitment, self.rule = decay, commitment, rule
        self.dead_threshold, self.sync = dead_threshold, sync
        # One CPU generator, first for the initial codebook and then for re-seeding draws: the seed fixes both.
        self.generator = torch.Generator().manual_seed(seed)
        codebook = torch.randn(num_codes, code_dim, generator=self.generator)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.zeros(num_codes))
        # The reference rule starts m at the initial codebook (hence its start-up bias); the corrected one at 0.
        self.register_buffer("ema_sum", codebook.clone() if rule == "reference" else torch.zeros_like(codebook))
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"num_codes={self.num_codes}, code_dim={self.code_dim}, splits={self.splits}, decay={self.decay}, "
            f"commitment={self.commitment}, rule={self.rule}"
        )

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def _rows(self, z: torch.Tensor) -> torch.Tensor:
        """(..., S·D) -> (M, D) with M = prod(...)·S."""
        width = self.splits * self.code_dim
        if z.shape[-1] != width:
            raise WmlabError(
                f"vq expects a last dimension of splits * code_dim = {self.splits} * {self.code_dim} = {width}, "
                f"got shape {tuple(z.shape)}; make latent_action_dim equal to vq.splits * vq.code_dim"
            )
        return z.reshape(-1, self.code_dim)

    def _nearest(self, rows: torch.Tensor) -> torch.Tensor:
        """(M, D) -> (M,) index of the nearest code; ties go to the lowest index."""
        rows = rows.to(self.codebook.dtype)
        dist2 = rows.pow(2).sum(1, keepdim=True) - 2 * rows @ self.codebook.T + self.codebook.pow(2).sum(1)
        return dist2.argmin(1)

    @torch.no_grad()
    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices without any update. (..., S·D) -> (..., S) int64."""
        return self._nearest(self._rows(z)).reshape(*z.shape[:-1], self.splits)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of given indices (planners, §8.4). (..., S) int64 -> (..., S·D)."""
        if indices.shape[-1] != self.splits:
            raise WmlabError(f"vq lookup expects indices of shape (..., {self.splits}), got {tuple(indices.shape)}")
        return self.codebook[indices].reshape(*indices.shape[:-1], self.splits * self.code_dim)

    def forward(self, z: torch.Tensor, alpha: float = 1.0, generator: torch.Generator | None = None) -> VQOutput:
        """Quantise z, and in training mode update the codebook.

        Args:
            z: (..., S·D) encoder output e.
            alpha: α of the two-phase schedule (§6.8, :func:`two_phase_alpha`); 0 returns z unchanged with zero
                loss (the EMA still updates), 1 is the plain quantiser.
            generator: draws for re-seeding dead codes; defaults to the module's own seeded generator.

        Returns:
            :class:`VQOutput`.
        """
        if not 0.0 <= alpha <= 1.0:
            raise WmlabError(f"the two-phase mixing weight alpha must lie in [0, 1], got {alpha}")
        rows = self._rows(z)
        idx = self._nearest(rows.detach())
        # Advanced indexing copies, so the in-place EMA update below cannot change z_q.
        z_q = self.codebook[idx].reshape(z.shape).to(z.dtype)
        z_st = z + (z_q - z).detach()
        commit_mse = (z_q.detach() - z).pow(2).mean()
        loss = (alpha * self.commitment) * commit_mse
        quantized = z_st if alpha == 1.0 else (1.0 - alpha) * z + alpha * z_st
        counts = torch.bincount(idx, minlength=self.num_codes)
        reseeded = torch.zeros(self.num_codes, dtype=torch.bool, device=z.device)
        if self.training:
            reseeded = self._update(rows.detach(), idx, self.generator if generator is None else generator)
        return VQOutput(quantized, idx.reshape(*z.shape[:-1], self.splits), loss, commit_mse.detach(), counts, reseeded)

    def _distributed(self) -> bool:
        return self.sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    @torch.no_grad()
    def _update(self, rows: torch.Tensor, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One EMA step from (M, D) rows and their (M,) codes; returns the (K,) bool mask of re-seeded codes."""
        rows = rows.to(self.codebook.dtype)
        # One-hot matmul rather than index_add_: deterministic on GPU as well.
        onehot = F.one_hot(idx, self.num_codes).to(rows.dtype)
        counts, sums = onehot.sum(0), onehot.T @ rows
        candidates = rows
        if self._distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
            candidates = _gather_rows(rows)
        if candidates.shape[0] == 0:  # nothing to average and nothing to re-seed from, on any replica
            return torch.zeros(self.num_codes, dtype=torch.bool, device=rows.device)
        g = self.decay
        self.ema_steps += 1
        self.ema_count.mul_(g).add_(counts, alpha=1.0 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1.0 - g)
        if self.rule == "reference":
            return self._refresh_reference(candidates, generator)
        return self._refresh_corrected(candidates, generator)

    def _refresh_reference(self, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The fork's rule: Laplace-smoothed counts, no bias correction, dead codes drawn with replacement."""
        k = self.num_codes
        dead = torch.zeros(k, dtype=torch.bool, device=candidates.device)
        total = self.ema_count.sum()
        if total <= 0:
            return dead
        smoothed = ((self.ema_count + LAPLACE_EPS) / (total + k * LAPLACE_EPS) * total).clamp_min(LAPLACE_EPS)
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        dead = smoothed < self.dead_threshold
        num_dead = int(dead.sum())
        if num_dead:
            draw = torch.randint(len(candidates), (num_dead,), generator=generator, device=generator.device)
            # n and m are deliberately left as they are: such a code stays dead and is re-seeded again next step.
            self.codebook[dead] = candidates[draw.to(candidates.device)]
        return dead

    def _refresh_corrected(self, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[lib] rule: bias-corrected means; dead codes drawn without replacement and reset as if assigned once."""
        correction = 1.0 - self.decay ** int(self.ema_steps)
        count_hat, sum_hat = self.ema_count / correction, self.ema_sum / correction
        used = count_hat > 0  # codes never assigned keep their vector until they are re-seeded
        self.codebook[used] = sum_hat[used] / count_hat[used, None]
        dead_codes = torch.nonzero(count_hat < self.dead_threshold).flatten()[: len(candidates)]
        dead = torch.zeros(self.num_codes, dtype=torch.bool, device=candidates.device)
        if len(dead_codes):
            draw = torch.randperm(len(candidates), generator=generator, device=generator.device)[: len(dead_codes)]
            self.codebook[dead_codes] = candidates[draw.to(candidates.device)]
            # n̂ = 1 expected assignment per step: consistent with c_k and not dead again on the next step.
            self.ema_count[dead_codes] = correction
            self.ema_sum[dead_codes] = correction * self.codebook[dead_codes]
            dead[dead_codes] = True
        return dead


def _gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Concatenate (M_r, D) rows of every rank in rank order; M_r may differ between ranks."""
    world = dist.get_world_size()
    size = torch.tensor([rows.shape[0]], device=rows.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = rows.new_zeros(longest, rows.shape[1])
    padded[: rows.shape[0]] = rows
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def two_phase_alpha(step: int, warmup: int, mix: int) -> float:
    """Mixing weight α of the two-phase schedule (§6.8) at global step ``step``.

    α = 0 while step < warmup, then clip((step - warmup) / mix, 0, 1); with mix = 0 it jumps to 1. The predictor is
    conditioned on (1 - α)·e + α·z_q^st(e) and β_eff = α·β; pass α to :meth:`EMAVectorQuantizer.forward`, which
    applies both. The schedule switched off is warmup = mix = 0.
    """
    if warmup < 0 or mix < 0:
        raise WmlabError(f"vq two-phase warm-up and mix must be >= 0 steps, got {warmup} and {mix}")
    if step < warmup:
        return 0.0
    if mix == 0:
        return 1.0
    return min(max((step - warmup) / mix, 0.0), 1.0)


def code_counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Assignments per code over any batch of indices. (...) int64 -> (K,) int64; sum several for a window."""
    return torch.bincount(indices.reshape(-1), minlength=num_codes)


def _probabilities(counts: torch.Tensor) -> torch.Tensor | None:
    counts = counts.to(torch.float64)
    total = counts.sum()
    return None if total <= 0 else counts / total


def perplexity(counts: torch.Tensor) -> float:
    """exp(-Σ_k p_k·ln(p_k + 1e-8)) with p_k = count_k / Σ_j count_j (§10.4). (K,) counts -> float; NaN if empty.

    K for uniform use of K codes, 1 for a single code.
    """
    p = _probabilities(counts)
    if p is None:
        return math.nan
    return math.exp(-float((p * torch.log(p + PERPLEXITY_EPS)).sum()))


def perplexity_norm(counts: torch.Tensor) -> float:
    """perplexity / K (§10.4; flagged below 0.1). (K,) counts -> float; NaN if empty."""
    return perplexity(counts) / counts.numel()


def dead_code_rate(counts: torch.Tensor) -> float:
    """1 - #{k : count_k > 0} / K (§10.4; flagged above 0.5). (K,) counts -> float."""
    return 1.0 - int((counts > 0).sum()) / counts.numel()
