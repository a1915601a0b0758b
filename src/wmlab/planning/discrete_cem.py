"""Discrete cross-entropy method over code indices (`discrete-cem`, spec/latent_actions.md §8.4).

A categorical distribution π (B, H, S, K) over the K codes, factorised over instances, steps and splits. Per
iteration: draw N sequences from the tempered π (the last ⌊uniform_frac·N⌋ uniformly at random instead), evaluate
them, refit π to the k elites' counts with a pseudocount, blend with momentum m on the **old** π, and floor at
``min_prob``. The plan is the best sampled sequence seen over all iterations (or argmax π with ``return_mode``).
All B instances are planned together, without Python loops over instances or samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmlab.errors import WmlabError
from wmlab.planning.base import (
    CategoricalSpace,
    CostFn,
    PlanResult,
    check_plan_args,
    check_positive,
    check_warm_start,
    evaluate_cost,
    history_rows,
    require_space,
)

HISTORY = ("best_cost", "best_seen_cost", "mean_elite_cost", "entropy", "mean_max_prob", "mean_abs_delta_pi")


@dataclass
class DiscreteCEMConfig:
    """Discrete CEM hyper-parameters; the defaults are the `paper` preset (= the fork's reported command, §8.4)."""

    samples: int = 300  #: N index sequences per iteration (cpu presets: 100)
    elites: int = 30  #: k lowest-cost sequences counted (cpu presets: 10)
    iterations: int = 10  #: I (cpu presets: 5)
    pseudocount: float = 1.0  #: pc added to every code's elite count
    momentum: float = 0.7  #: m, weight of the OLD distribution: π ← m·π_old + (1 - m)·π_mle
    min_prob: float = 1e-3  #: floor of π (and of π before tempering), followed by renormalisation
    init_smoothing: float = 0.05  #: ε of a warm start: π = (1 - ε)·onehot + ε/K (unused without a warm start)
    temperature: float = 1.5  #: τ of the sampling distribution ∝ max(π, min_prob)^(1/τ); τ > 1 flattens
    uniform_frac: float = 0.1  #: the last ⌊uniform_frac·N⌋ samples are uniformly random (hard-coded 0.1 in the fork)
    use_mode_as_first_sample: bool = False  #: sample 0 is argmax π
    return_mode: bool = False  #: return argmax π instead of the best sampled sequence seen

    def __post_init__(self) -> None:
        if not 1 <= self.elites <= self.samples:
            raise WmlabError(
                f"discrete-cem needs 1 <= elites <= samples, got elites={self.elites}, samples={self.samples}"
            )
        check_positive("discrete-cem", iterations=self.iterations, temperature=self.temperature)
        for name, low, high in (
            ("momentum", 0.0, 1.0),
            ("min_prob", 0.0, 1.0),
            ("init_smoothing", 0.0, 1.0),
            ("uniform_frac", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise WmlabError(f"discrete-cem.{name} must lie in [{low}, {high}], got {value}")
        if self.pseudocount < 0:
            raise WmlabError(f"discrete-cem.pseudocount must be >= 0, got {self.pseudocount}")


def floor_and_normalise(probs: torch.Tensor, min_prob: float) -> torch.Tensor:
    """Clamp probabilities (..., K) to >= ``min_prob`` and renormalise over the last dimension."""
    probs = probs.clamp_min(min_prob)
    return probs / probs.sum(dim=-1, keepdim=True)


class DiscreteCEM:
    """Discrete cross-entropy method over a :class:`CategoricalSpace`.

    Args:
        space: the categorical space (K codes, S splits).
        cfg: hyper-parameters; ``DiscreteCEMConfig()`` (the `paper` values) when None.

    Warm start: int64 indices (B, H', S), H' <= H (map vectors to their nearest codes first); those steps start from
    (1 - ε)·onehot + ε/K, the others from the uniform 1/K.
    """

    name = "discrete-cem"

    def __init__(self, space: CategoricalSpace, cfg: DiscreteCEMConfig | None = None) -> None:
        require_space(self.name, space, CategoricalSpace)
        self.space = space
        self.cfg = cfg if cfg is not None else DiscreteCEMConfig()
        if self.cfg.min_prob * space.num_codes >= 1:
            raise WmlabError(
                f"discrete-cem.min_prob={self.cfg.min_prob} times num_codes={space.num_codes} must be < 1, "
                "or the floor makes every distribution uniform; lower min_prob"
            )

    def initial_distribution(
        self, batch: int, horizon: int, warm_start: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        """π (B, H, S, K): uniform, with the warm start's H' steps set to (1 - ε)·onehot + ε/K."""
        codes, splits = self.space.num_codes, self.space.splits
        probs = torch.full((batch, horizon, splits, codes), 1.0 / codes, device=device)
        if warm_start is not None:
            if warm_start.is_floating_point() or warm_start.is_complex():
                raise WmlabError(
                    f"discrete-cem warm_start must hold integer code indices, got {warm_start.dtype}; "
                    "map latent vectors to their nearest codes first"
                )
            if bool(((warm_start < 0) | (warm_start >= codes)).any()):
                raise WmlabError(f"discrete-cem warm_start indices must lie in [0, {codes})")
            eps = self.cfg.init_smoothing
            onehot = torch.nn.functional.one_hot(warm_start.to(device=device, dtype=torch.int64), codes).float()
            probs[:, : warm_start.shape[1]] = (1.0 - eps) * onehot + eps / codes
        return probs

    def sample(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """N index sequences (B, N, H, S) int64 from π (B, H, S, K): tempered draws first, uniform draws last."""
        cfg = self.cfg
        batch, horizon, splits, codes = probs.shape
        num_uniform = int(cfg.uniform_frac * cfg.samples)
        num_tempered = cfg.samples - num_uniform
        use_mode = cfg.use_mode_as_first_sample and num_tempered > 0
        parts = []
        if use_mode:
            parts.append(probs.argmax(dim=-1).unsqueeze(1))
        num_drawn = num_tempered - int(use_mode)
        if num_drawn > 0:
            # softmax(log(max(π, min_prob)) / τ) ∝ max(π, min_prob)^(1/τ)
            tempered = torch.softmax(probs.clamp_min(cfg.min_prob).log() / cfg.temperature, dim=-1)
            draws = torch.multinomial(tempered.reshape(-1, codes), num_drawn, replacement=True, generator=generator)
            parts.append(draws.reshape(batch, horizon, splits, num_drawn).permute(0, 3, 1, 2))
        if num_uniform > 0:
            shape = (batch, num_uniform, horizon, splits)
            parts.append(torch.randint(0, codes, shape, generator=generator, device=probs.device))
        return torch.cat(parts, dim=1).contiguous()

    def plan(
        self,
        cost: CostFn,
        batch: int,
        horizon: int,
        generator: torch.Generator,
        warm_start: torch.Tensor | None = None,
    ) -> PlanResult:
        """Minimise ``cost`` over (B, H, S) index sequences; see :class:`~wmlab.planning.base.Planner`.

        The cost is called with candidates (B, N, H, S) int64 once per iteration, under ``torch.no_grad()``.
        ``PlanResult.cost`` is the cost the returned best sequence was sampled with; with ``return_mode`` the mode is
        evaluated once more (B, 1, H, S).
        """
        cfg, splits = self.cfg, self.space.splits
        check_plan_args(self.name, batch, horizon)
        warm = check_warm_start(self.name, warm_start, batch, horizon, (splits,))
        device = generator.device
        probs = self.initial_distribution(batch, horizon, warm, device)
        best_cost = torch.full((batch,), float("inf"), device=device)
        best_sequence = torch.zeros((batch, horizon, splits), dtype=torch.int64, device=device)
        instance = torch.arange(batch, device=device)
        rows = []
        with torch.no_grad():
            for _ in range(cfg.iterations):
                candidates = self.sample(probs, generator)  # (B, N, H, S)
                costs = evaluate_cost(self.name, cost, candidates)  # (B, N)
                elite_costs, elite_index = costs.topk(cfg.elites, dim=1, largest=False)  # (B, k)
                # Keep the best sampled sequence seen so far; ties keep the earliest (argmin gives the first minimum).
                iteration_cost, iteration_best = costs.min(dim=1)
                improved = iteration_cost < best_cost
                best_cost = torch.where(improved, iteration_cost.to(best_cost.dtype), best_cost)
                best_sequence = torch.where(
                    improved[:, None, None], candidates[instance, iteration_best], best_sequence
                )
                # Maximum likelihood with a pseudocount from the elites' code counts per (step, split).
                elite_codes = candidates[instance[:, None], elite_index].permute(0, 2, 3, 1)  # (B, H, S, k)
                counts = torch.zeros_like(probs).scatter_add_(
                    -1, elite_codes, torch.ones(elite_codes.shape, device=device)
                )
                mle = counts + cfg.pseudocount
                mle = floor_and_normalise(mle / mle.sum(dim=-1, keepdim=True), cfg.min_prob)
                updated = floor_and_normalise(cfg.momentum * probs + (1.0 - cfg.momentum) * mle, cfg.min_prob)
                delta = (updated - probs).abs().mean()
                probs = updated
                entropy = torch.special.entr(probs).sum(-1).mean()  # 0·log 0 = 0 when min_prob is 0
                rows.append(
                    torch.stack(
                        [
                            elite_costs[:, 0].float().mean(),
                            best_cost.float().mean(),
                            elite_costs.float().mean(),
                            entropy,
                            probs.max(dim=-1).values.mean(),
                            delta,
                        ]
                    )
                )
            if cfg.return_mode:
                plan = probs.argmax(dim=-1)
                plan_cost = evaluate_cost(self.name, cost, plan.unsqueeze(1))[:, 0]
            else:
                plan, plan_cost = best_sequence, best_cost
        return PlanResult(plan=plan, cost=plan_cost, history=history_rows(HISTORY, rows))
