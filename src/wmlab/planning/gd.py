"""Gradient-descent planning (`gd`, spec/latent_actions.md §8.5).

Plain SGD on the decision variables u (B, H, d) through a differentiable cost, with Gaussian noise added after every
step. The loss is mean_b(C_b(u))·B = Σ_b C_b(u), so each instance receives the gradient of its own cost, unscaled by
the batch size. Not defined for code indices (`la-vq`).
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
    check_plan_args,
    check_positive,
    check_warm_start,
    evaluate_cost,
    history_rows,
    require_space,
    resolve_stats,
)

INITS = ("randn", "zero", "empirical")
HISTORY = ("step", "best_cost", "grad_norm")


@dataclass
class GDConfig:
    """Gradient-descent hyper-parameters; the defaults are those of §8.5."""

    steps: int = 1000  #: S SGD steps
    lr: float = 1.0  #: SGD learning rate
    noise_std: float = 0.003  #: std of the Gaussian noise added to u after every step (0 turns it off)
    init: str = "randn"  #: randn (standard normal) | zero (the normalised zero action) | empirical (training mean)
    log_every: int = 10  #: record a history row every this many steps (and after the last one)

    def __post_init__(self) -> None:
        check_init("gd", self.init, INITS)
        check_positive("gd", steps=self.steps, lr=self.lr, log_every=self.log_every)
        if self.noise_std < 0:
            raise WmlabError(f"gd.noise_std must be >= 0, got {self.noise_std}")


class GradientDescent:
    """Gradient descent over a :class:`BoxSpace` through a differentiable cost.

    Args:
        space: the box space (d); a :class:`~wmlab.planning.base.CategoricalSpace` is refused.
        cfg: hyper-parameters; ``GDConfig()`` when None.
        init_mean: (d,) training-set mean of the decision variables; required by ``init=empirical``.
        init_std: (d,) training-set std (accepted for symmetry with CEM; unused).
        zero_action: (d,) the normalised zero action (0 - μ_a)/σ_a for ``init=zero``; zeros when None.

    Warm start (B, H', d), H' <= H: its rows replace the first H' rows of the initial u.
    """

    name = "gd"

    def __init__(
        self,
        space: BoxSpace,
        cfg: GDConfig | None = None,
        init_mean: torch.Tensor | None = None,
        init_std: torch.Tensor | None = None,
        zero_action: torch.Tensor | None = None,
    ) -> None:
        require_space(self.name, space, BoxSpace)
        self.space = space
        self.cfg = cfg if cfg is not None else GDConfig()
        if self.cfg.init == "empirical" and init_mean is None:
            raise WmlabError(
                "gd with init=empirical needs init_mean, the per-dimension mean (dim,) of the training-set actions or "
                "latents (stored in the world-model checkpoint); pass it, or use init=randn or init=zero"
            )
        self.init_mean, self.init_std = resolve_stats(self.name, space, init_mean, init_std, None)
        if zero_action is not None:
            zero_action = torch.as_tensor(zero_action, dtype=torch.float32)
            if zero_action.shape != (space.dim,):
                raise WmlabError(f"gd zero_action must have shape ({space.dim},), got {tuple(zero_action.shape)}")
        self.zero_action = zero_action

    def initial_plan(
        self, batch: int, horizon: int, warm_start: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """Initial u (B, H, d) per ``cfg.init``, with the warm start's H' rows first."""
        dim, device = self.space.dim, generator.device
        if self.cfg.init == "randn":
            plan = torch.randn((batch, horizon, dim), generator=generator, device=device)
        else:
            row = self.init_mean if self.cfg.init == "empirical" else self.zero_action
            row = torch.zeros(dim) if row is None else row
            plan = row.to(device).expand(batch, horizon, dim).clone()
        if warm_start is not None:
            plan[:, : warm_start.shape[1]] = warm_start.to(plan)
        return plan

    def plan(
        self,
        cost: CostFn,
        batch: int,
        horizon: int,
        generator: torch.Generator,
        warm_start: torch.Tensor | None = None,
    ) -> PlanResult:
        """Minimise ``cost`` over (B, H, d) sequences; see :class:`~wmlab.planning.base.Planner`.

        The cost is called with a single candidate per instance, u (B, 1, H, d), once per step with gradients and
        once more without, after the last step, to report ``PlanResult.cost``.
        """
        cfg, dim = self.cfg, self.space.dim
        check_plan_args(self.name, batch, horizon)
        warm = check_warm_start(self.name, warm_start, batch, horizon, (dim,))
        plan = self.initial_plan(batch, horizon, warm, generator)
        rows = []
        for step in range(cfg.steps):
            plan = plan.detach().requires_grad_(True)
            with torch.enable_grad():
                costs = evaluate_cost(self.name, cost, plan.unsqueeze(1))  # (B, 1)
                if not costs.requires_grad:
                    raise WmlabError(
                        "gd needs a differentiable cost: the costs it returned carry no gradient to the candidates "
                        "(computed under torch.no_grad(), detached, or through non-differentiable ops); "
                        "use 'cem' or 'mppi' for a black-box cost"
                    )
                loss = costs.mean() * batch  # each instance gets the gradient of its own cost
                (grad,) = torch.autograd.grad(loss, plan)
            with torch.no_grad():
                plan = plan - cfg.lr * grad
                if cfg.noise_std > 0:
                    plan = plan + cfg.noise_std * torch.randn(
                        plan.shape, generator=generator, device=plan.device, dtype=plan.dtype
                    )
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                grad_norm = grad.flatten(1).norm(dim=1).mean()
                rows.append(
                    torch.stack(
                        [
                            torch.tensor(float(step), device=grad.device),
                            costs.detach().float().mean(),
                            grad_norm.float(),
                        ]
                    )
                )
        with torch.no_grad():
            final_cost = evaluate_cost(self.name, cost, plan.unsqueeze(1))[:, 0]
        return PlanResult(plan=plan.detach(), cost=final_cost, history=history_rows(HISTORY, rows))
