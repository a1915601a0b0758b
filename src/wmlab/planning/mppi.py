"""Model-predictive path integral (`mppi`, spec/latent_actions.md §8.6; a [lib] addition the papers do not use).

Per iteration and instance: draw N candidates from N(μ, σ²) with candidate 0 = μ, weight them by a softmax of their
negated, normalised costs, and set μ and σ to the weighted mean and standard deviation (σ floored at ``sigma_min``).
The plan is the final μ. All B instances are planned together, without Python loops over instances or samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmlab.errors import WmlabError, unknown_name_error
from wmlab.planning.base import (
    BoxSpace,
    CostFn,
    PlanResult,
    check_init,
    check_positive,
    evaluate_cost,
    gaussian_start,
    history_rows,
    require_space,
    resolve_stats,
    sample_around,
)

TEMPERATURE_MODES = ("relative", "absolute")
SPREAD_EPS = 1e-8  # keeps the relative normalisation finite when all costs are equal
HISTORY = ("best_cost", "weighted_cost", "mean_sigma", "effective_samples")


@dataclass
class MPPIConfig:
    """MPPI hyper-parameters; the defaults are those of §8.6."""

    samples: int = 300  #: N candidates per iteration, candidate 0 being the mean
    iterations: int = 10  #: I
    temperature: float = 0.1  #: λ
    temperature_mode: str = (
        "relative"  #: relative (λ times the median-minus-min cost spread) | absolute (λ in cost units)
    )
    top_k: int | None = None  #: give weight only to the k lowest-cost candidates; None: all N
    sigma_min: float = 0.05  #: floor of σ after each update
    init: str = "standard"  #: standard (μ 0, σ var_scale) | empirical (training-set mean, var_scale times its std)
    var_scale: float = 1.0  #: scale of the initial σ

    def __post_init__(self) -> None:
        check_init("mppi", self.init)
        if self.temperature_mode not in TEMPERATURE_MODES:
            raise unknown_name_error("mppi temperature_mode", self.temperature_mode, TEMPERATURE_MODES)
        check_positive("mppi", samples=self.samples, iterations=self.iterations, temperature=self.temperature)
        check_positive("mppi", var_scale=self.var_scale)
        if self.sigma_min < 0:
            raise WmlabError(f"mppi.sigma_min must be >= 0, got {self.sigma_min}")
        if self.top_k is not None and not 1 <= self.top_k <= self.samples:
            raise WmlabError(f"mppi needs 1 <= top_k <= samples, got top_k={self.top_k}, samples={self.samples}")


class MPPI:
    """Model-predictive path integral over a :class:`BoxSpace`.

    Args:
        space: the box space (d).
        cfg: hyper-parameters; ``MPPIConfig()`` when None.
        init_mean: (d,) training-set mean of the decision variables; required by ``init=empirical``.
        init_std: (d,) training-set std; required by ``init=empirical``.

    Costs are normalised per instance: s = (C - min C) / (λ·(median C - min C) + 1e-8) in ``relative`` mode (the
    median is the lower median over all N candidates) and s = (C - min C) / λ in ``absolute`` mode; w = softmax(-s).
    Warm start (B, H', d), H' <= H: as in CEM, its rows replace the first H' rows of μ and σ is reset to σ_init.
    """

    name = "mppi"

    def __init__(
        self,
        space: BoxSpace,
        cfg: MPPIConfig | None = None,
        init_mean: torch.Tensor | None = None,
        init_std: torch.Tensor | None = None,
    ) -> None:
        require_space(self.name, space, BoxSpace)
        self.space = space
        self.cfg = cfg if cfg is not None else MPPIConfig()
        needed_by = "init=empirical" if self.cfg.init == "empirical" else None
        self.init_mean, self.init_std = resolve_stats(self.name, space, init_mean, init_std, needed_by)

    def weights(self, costs: torch.Tensor) -> torch.Tensor:
        """(B, N) importance weights, summing to 1 per instance, of costs (B, N)."""
        cfg = self.cfg
        lowest = costs.min(dim=1, keepdim=True).values
        if cfg.temperature_mode == "relative":
            spread = costs.median(dim=1, keepdim=True).values - lowest
            scores = (costs - lowest) / (cfg.temperature * spread + SPREAD_EPS)
        else:
            scores = (costs - lowest) / cfg.temperature
        if cfg.top_k is not None:
            kept = costs.topk(cfg.top_k, dim=1, largest=False).indices
            keep = torch.zeros_like(costs, dtype=torch.bool).scatter_(1, kept, True)
            scores = scores.masked_fill(~keep, float("inf"))
        return torch.softmax(-scores, dim=1)

    def plan(
        self,
        cost: CostFn,
        batch: int,
        horizon: int,
        generator: torch.Generator,
        warm_start: torch.Tensor | None = None,
    ) -> PlanResult:
        """Minimise ``cost`` over (B, H, d) sequences; see :class:`~wmlab.planning.base.Planner`.

        The cost is called with candidates (B, N, H, d) once per iteration, under ``torch.no_grad()``, and once more
        with the final μ (B, 1, H, d) to report ``PlanResult.cost``.
        """
        cfg, dim = self.cfg, self.space.dim
        mean, std = gaussian_start(
            self.name,
            cfg.init,
            cfg.var_scale,
            self.init_mean,
            self.init_std,
            batch,
            horizon,
            dim,
            warm_start,
            generator.device,
        )  # (B, H, d) each
        rows = []
        with torch.no_grad():
            for _ in range(cfg.iterations):
                candidates = sample_around(mean, std, cfg.samples, generator)  # (B, N, H, d)
                costs = evaluate_cost(self.name, cost, candidates)  # (B, N)
                weights = self.weights(costs).to(candidates.dtype)
                mean = torch.einsum("bn,bnhd->bhd", weights, candidates)
                variance = torch.einsum("bn,bnhd->bhd", weights, (candidates - mean.unsqueeze(1)).square())
                std = variance.sqrt().clamp_min(cfg.sigma_min)
                rows.append(
                    torch.stack(
                        [
                            costs.min(dim=1).values.float().mean(),
                            (weights * costs).sum(dim=1).float().mean(),
                            std.float().mean(),
                            (1.0 / weights.square().sum(dim=1)).float().mean(),
                        ]
                    )
                )
            final_cost = evaluate_cost(self.name, cost, mean.unsqueeze(1))[:, 0]
        return PlanResult(plan=mean, cost=final_cost, history=history_rows(HISTORY, rows))
