"""Model-predictive control loop (spec/latent_actions.md §8.7), generic over planners and environments.

Each iteration plans H steps from the current observations, executes the first ``n_exec`` and warm-starts the next
plan with the unexecuted tail. The budget is bounded (``max_iter``) and ground-truth success never enters the loop
([lib], pitfall 8 of §13): the only stop is the optional, non-privileged ``stop_cost`` on the model's own cost.
Open-loop evaluation is the special case ``max_iter = 1, n_exec = H``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from wmlab.errors import WmlabError
from wmlab.planning.base import PlanResult

PlanFn = Callable[[torch.Tensor | None], PlanResult]
"""warm start (B, H', ...) or None -> PlanResult; the caller's closure knows the current observations and goals."""

ExecuteFn = Callable[[torch.Tensor, torch.Tensor], None]
"""(chunk (B, n_exec, ...), active (B,) bool) -> None: acts for the active instances, records what it wants."""


@dataclass
class MPCConfig:
    """MPC loop settings ([lib] bounds of §8.7)."""

    max_iter: int = 10  #: planning rounds at most (10 x n_exec 5 x frameskip 5 = 250 env steps)
    n_exec: int = 5  #: plan steps executed per round; the DINO-WM PushT setting executes the whole plan (H = 5)
    stop_cost: float | None = None  #: an instance whose plan cost falls below this stops acting; None: never

    def __post_init__(self) -> None:
        if self.max_iter < 1 or self.n_exec < 1:
            raise WmlabError(f"mpc needs max_iter >= 1 and n_exec >= 1, got {self.max_iter} and {self.n_exec}")


def shift_warm_start(plan: torch.Tensor, n_exec: int) -> torch.Tensor | None:
    """The unexecuted tail plan[:, n_exec:] (B, H - n_exec, ...) to warm-start the next plan; None when empty."""
    if plan.shape[1] <= n_exec:
        return None
    return plan[:, n_exec:]


def run_mpc(plan_fn: PlanFn, execute_fn: ExecuteFn, cfg: MPCConfig, batch: int, horizon: int) -> list[PlanResult]:
    """Plan, execute the first ``cfg.n_exec`` steps, replan from the new observations; up to ``cfg.max_iter`` times.

    Args:
        plan_fn: warm start (B, H - n_exec, ...) or None -> PlanResult with plan (B, H, ...) and cost (B,).
        execute_fn: called once per round with the chunk plan[:, :n_exec] (B, n_exec, ...) and the active mask (B,)
            bool; inactive instances must not act (zero or no actions).
        cfg: loop settings.
        batch: B instances planned together.
        horizon: H, steps per plan (must be >= n_exec).

    Returns:
        One PlanResult per round. With ``cfg.stop_cost``, an instance whose plan cost is below it still executes that
        round's chunk (the cost predicts where that plan leads) and is inactive from the next round on; the loop ends
        early once no instance is active.
    """
    if cfg.n_exec > horizon:
        raise WmlabError(f"mpc n_exec={cfg.n_exec} exceeds the planning horizon {horizon}; lower mpc.n_exec")
    active: torch.Tensor | None = None
    warm: torch.Tensor | None = None
    results: list[PlanResult] = []
    for _ in range(cfg.max_iter):
        result = plan_fn(warm)
        if result.plan.shape[:2] != (batch, horizon) or result.cost.shape != (batch,):
            raise WmlabError(
                f"mpc expected a plan ({batch}, {horizon}, ...) with cost ({batch},), got plan "
                f"{tuple(result.plan.shape)} and cost {tuple(result.cost.shape)}"
            )
        if active is None:
            active = torch.ones(batch, dtype=torch.bool, device=result.cost.device)
        results.append(result)
        execute_fn(result.plan[:, : cfg.n_exec], active.clone())
        warm = shift_warm_start(result.plan, cfg.n_exec)
        if cfg.stop_cost is not None:
            active = active & ~(result.cost.detach() < cfg.stop_cost)
            if not bool(active.any()):
                break
    return results
