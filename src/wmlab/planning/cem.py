"""Gaussian cross-entropy method (`cem`, spec/latent_actions.md §8.3).

Per iteration and instance: draw N candidates from N(μ, σ²) with candidate 0 = μ, evaluate them, and refit μ and
the unbiased σ to the k lowest-cost candidates. The plan is the final μ. All B instances are planned together,
without Python loops over instances or samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmlab.errors import WmlabError
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

HISTORY = ("best_cost", "mean_elite_cost", "mean_sigma")


@dataclass
class CEMConfig:
    """Gaussian CEM hyper-parameters; the defaults are the `paper` preset (§11)."""

    samples: int = 300  #: N candidates per iteration, candidate 0 being the mean (cpu presets: 100)
    elites: int = 30  #: k lowest-cost candidates refitted (cpu presets: 10)
    iterations: int = 10  #: I (DINO-WM's MPC setting: 30; cpu presets: 5)
    init: str = "standard"  #: standard (μ 0, σ var_scale) | empirical (training-set mean, var_scale times its std)
    var_scale: float = 1.0  #: scale of the initial σ
    clamp_k: float | None = None  #: clamp samples and μ to init_mean ± clamp_k·init_std (the fork's prior: 2); None off

    def __post_init__(self) -> None:
        check_init("cem", self.init)
        if not 2 <= self.elites <= self.samples:
            raise WmlabError(
                f"cem needs 2 <= elites <= samples (the unbiased std needs two elites), "
                f"got elites={self.elites}, samples={self.samples}"
            )
        check_positive("cem", iterations=self.iterations, var_scale=self.var_scale)
        if self.clamp_k is not None:
            check_positive("cem", clamp_k=self.clamp_k)


class CEM:
    """Gaussian cross-entropy method over a :class:`BoxSpace`.

    Args:
        space: the box space (d).
        cfg: hyper-parameters; ``CEMConfig()`` (the `paper` values) when None.
        init_mean: (d,) training-set mean of the decision variables; required by ``init=empirical`` and ``clamp_k``.
        init_std: (d,) training-set std; required by ``init=empirical`` and ``clamp_k``.

    Warm start (B, H', d), H' <= H: its rows replace the first H' rows of μ, the other rows keep μ_init, and σ is
    reset to σ_init. With ``clamp_k`` the warm-started μ is clamped as well.
    """

    name = "cem"

    def __init__(
        self,
        space: BoxSpace,
        cfg: CEMConfig | None = None,
        init_mean: torch.Tensor | None = None,
        init_std: torch.Tensor | None = None,
    ) -> None:
        require_space(self.name, space, BoxSpace)
        self.space = space
        self.cfg = cfg if cfg is not None else CEMConfig()
        needed_by = None
        if self.cfg.init == "empirical":
            needed_by = "init=empirical"
        elif self.cfg.clamp_k is not None:
            needed_by = "clamp_k"
        self.init_mean, self.init_std = resolve_stats(self.name, space, init_mean, init_std, needed_by)

    def bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(lower, upper), each (d,), of the ``clamp_k`` box around the training statistics; None without a clamp."""
        if self.cfg.clamp_k is None:
            return None
        assert self.init_mean is not None and self.init_std is not None
        half_width = self.cfg.clamp_k * self.init_std.to(device)
        mean = self.init_mean.to(device)
        return mean - half_width, mean + half_width

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
        cfg, dim, device = self.cfg, self.space.dim, generator.device
        mean, std = gaussian_start(
            self.name, cfg.init, cfg.var_scale, self.init_mean, self.init_std, batch, horizon, dim, warm_start, device
        )  # (B, H, d) each
        bounds = self.bounds(device)
        if bounds is not None:
            mean = mean.clamp(*bounds)
        rows = []
        with torch.no_grad():
            for _ in range(cfg.iterations):
                candidates = sample_around(mean, std, cfg.samples, generator)  # (B, N, H, d)
                if bounds is not None:
                    candidates = candidates.clamp(*bounds)
                costs = evaluate_cost(self.name, cost, candidates)  # (B, N)
                elite_costs, elite_index = costs.topk(cfg.elites, dim=1, largest=False)  # (B, k)
                elites = candidates.gather(1, elite_index[:, :, None, None].expand(-1, -1, horizon, dim))
                mean = elites.mean(dim=1)
                std = elites.std(dim=1)  # unbiased, per step and dimension
                if bounds is not None:
                    mean = mean.clamp(*bounds)
                rows.append(
                    torch.stack([elite_costs[:, 0].float().mean(), elite_costs.float().mean(), std.float().mean()])
                )
            final_cost = evaluate_cost(self.name, cost, mean.unsqueeze(1))[:, 0]
        return PlanResult(plan=mean, cost=final_cost, history=history_rows(HISTORY, rows))
