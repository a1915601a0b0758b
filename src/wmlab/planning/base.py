"""What every planner shares: action spaces, the cost-function contract, the plan result and the planner protocol.

A planner sees only a batched cost function and an action space, never a model class (spec/latent_actions.md §8.2):

* :class:`BoxSpace` (d): candidates are float tensors (B, N, H, d): normalised macro actions or continuous latents.
* :class:`CategoricalSpace` (K, S): candidates are int64 tensors (B, N, H, S) of code indices in [0, K).
* ``cost(candidates) -> (B, N)``, lower is better; gradient descent needs it to be differentiable.

Shapes: B evaluation instances, N candidates per instance, H horizon in macro steps, d box width, S splits, K codes.
The device of a planner's tensors is the device of the ``torch.Generator`` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, Union

import torch

from wmlab.errors import WmlabError, unknown_name_error

INITS = ("standard", "empirical")


@dataclass(frozen=True)
class BoxSpace:
    """Continuous decision variables: candidates are float tensors (B, N, H, dim)."""

    dim: int  #: d, width of one step (10 normalised macro-action entries, or A = 32 latent entries)

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise WmlabError(f"BoxSpace needs dim >= 1, got {self.dim}")


@dataclass(frozen=True)
class CategoricalSpace:
    """Discrete decision variables: candidates are int64 tensors (B, N, H, splits) of indices in [0, num_codes)."""

    num_codes: int  #: K, codebook size
    splits: int = 1  #: S, codes per step (the quantiser's splits)

    def __post_init__(self) -> None:
        if self.num_codes < 2:
            raise WmlabError(f"CategoricalSpace needs num_codes >= 2 to have a choice, got {self.num_codes}")
        if self.splits < 1:
            raise WmlabError(f"CategoricalSpace needs splits >= 1, got {self.splits}")


ActionSpace = Union[BoxSpace, CategoricalSpace]

CostFn = Callable[[torch.Tensor], torch.Tensor]
"""Batched objective: candidates (B, N, H, d) float or (B, N, H, S) int64 -> costs (B, N), lower is better."""


@dataclass
class PlanResult:
    """What a planner returns.

    Attributes:
        plan: (B, H, d) float for a box space, (B, H, S) int64 for a categorical space.
        cost: (B,) the cost of ``plan`` as the planner evaluated it. CEM, MPPI and gradient descent evaluate the
            returned plan once more (one extra cost call with N = 1) because their last update moves it after the
            last evaluation; discrete CEM returns the best sampled sequence with the cost it was sampled with.
        history: one dict of python floats per iteration (per logged step for gradient descent), averaged over the
            B instances: ``best_cost``, ``mean_elite_cost`` and a spread measure (``mean_sigma``, or ``entropy``,
            ``mean_max_prob`` and ``mean_abs_delta_pi`` for discrete CEM).
    """

    plan: torch.Tensor
    cost: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)


class Planner(Protocol):
    """Minimises a batched cost over H-step sequences from its ``space``."""

    space: ActionSpace

    def plan(
        self,
        cost: CostFn,
        batch: int,
        horizon: int,
        generator: torch.Generator,
        warm_start: torch.Tensor | None = None,
    ) -> PlanResult:
        """Plan B = ``batch`` sequences of ``horizon`` steps.

        Args:
            cost: candidates (B, N, H, ...) -> (B, N).
            batch: B, evaluation instances planned together.
            horizon: H, steps per sequence.
            generator: the only source of randomness; its device is the device of every tensor the planner makes.
            warm_start: (B, H', ...) with H' <= H, e.g. the unexecuted tail of the previous plan; None for a cold start.
        """
        ...


def require_space(planner: str, space: object, expected: type) -> None:
    """Raise a clear error when ``planner`` is asked to search a space it does not handle."""
    if isinstance(space, expected):
        return
    if expected is BoxSpace:
        hint = "for code indices (la-vq) use 'discrete-cem'"
    else:
        hint = "for continuous actions or latents (action, la) use 'cem', 'mppi' or 'gd'"
    raise WmlabError(f"planner {planner!r} needs a {expected.__name__}, got {space!r}; {hint}")


def check_init(planner: str, init: str, choices: tuple[str, ...] = INITS) -> None:
    """Raise for an unknown initialisation name."""
    if init not in choices:
        raise unknown_name_error(f"{planner} init", init, choices)


def check_positive(planner: str, **values: float) -> None:
    """Raise if any named config value is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise WmlabError(f"{planner}.{name} must be > 0, got {value}")


def check_plan_args(planner: str, batch: int, horizon: int) -> None:
    """Raise for a batch or horizon below 1."""
    if batch < 1 or horizon < 1:
        raise WmlabError(f"{planner} needs batch >= 1 and horizon >= 1, got batch={batch}, horizon={horizon}")


def resolve_stats(
    planner: str, space: BoxSpace, init_mean: torch.Tensor | None, init_std: torch.Tensor | None, needed_by: str | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Validated per-dimension statistics (dim,) float32, or None when not given.

    ``needed_by`` names the option that requires them (e.g. ``init=empirical``); None when they are optional.
    """
    if needed_by is not None and (init_mean is None or init_std is None):
        raise WmlabError(
            f"{planner} with {needed_by} needs init_mean and init_std, the per-dimension mean and std (dim,) of the "
            "training-set actions or latents (stored in the world-model checkpoint); pass them, or use init=standard"
        )
    stats = []
    for name, value in (("init_mean", init_mean), ("init_std", init_std)):
        if value is None:
            stats.append(None)
            continue
        value = torch.as_tensor(value, dtype=torch.float32)
        if value.shape != (space.dim,):
            raise WmlabError(f"{planner} {name} must have shape ({space.dim},), got {tuple(value.shape)}")
        stats.append(value)
    if stats[1] is not None and not bool((stats[1] > 0).all()):
        raise WmlabError(f"{planner} init_std must be > 0 in every dimension")
    return stats[0], stats[1]


def check_warm_start(
    planner: str, warm_start: torch.Tensor | None, batch: int, horizon: int, step_shape: tuple[int, ...]
) -> torch.Tensor | None:
    """The warm start (B, H', *step_shape) with H' <= H after checking it, or None when it is absent or empty."""
    if warm_start is None or warm_start.shape[1:2] == (0,):
        return None
    if warm_start.dim() != 2 + len(step_shape) or warm_start.shape[0] != batch or warm_start.shape[2:] != step_shape:
        expected = ", ".join(str(s) for s in (batch, "H'", *step_shape))
        raise WmlabError(f"{planner} warm_start must have shape ({expected}), got {tuple(warm_start.shape)}")
    if warm_start.shape[1] > horizon:
        raise WmlabError(
            f"{planner} warm_start has {warm_start.shape[1]} steps, more than the horizon {horizon}; "
            "pass the unexecuted tail of the previous plan (see wmlab.planning.shift_warm_start)"
        )
    return warm_start


def gaussian_start(
    planner: str,
    init: str,
    var_scale: float,
    init_mean: torch.Tensor | None,
    init_std: torch.Tensor | None,
    batch: int,
    horizon: int,
    dim: int,
    warm_start: torch.Tensor | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked plan arguments, then the starting (mean, std), each (B, H, d) float32, of a Gaussian planner (CEM,
    MPPI; spec §8.3 ``cem.init``).

    ``standard``: mean 0 and std ``var_scale``; ``empirical``: the training-set mean and ``var_scale`` times its std.
    A warm start (B, H', d) replaces the first H' rows of the mean; the std is always the initial one.
    """
    check_plan_args(planner, batch, horizon)
    warm = check_warm_start(planner, warm_start, batch, horizon, (dim,))
    if init == "empirical":
        assert init_mean is not None and init_std is not None  # resolve_stats refused missing statistics
        mean, std = init_mean.to(device), var_scale * init_std.to(device)
    else:
        mean = torch.zeros(dim, device=device)
        std = torch.full((dim,), float(var_scale), device=device)
    mean = mean.expand(batch, horizon, dim).clone()
    if warm is not None:
        mean[:, : warm.shape[1]] = warm.to(mean)
    return mean, std.expand(batch, horizon, dim)


def sample_around(mean: torch.Tensor, std: torch.Tensor, samples: int, generator: torch.Generator) -> torch.Tensor:
    """N = ``samples`` Gaussian candidates (B, N, H, d) around mean and std (B, H, d); candidate 0 is the mean."""
    batch, horizon, dim = mean.shape
    noise = torch.randn((batch, samples, horizon, dim), generator=generator, device=mean.device)
    candidates = mean.unsqueeze(1) + std.unsqueeze(1) * noise
    candidates[:, 0] = mean
    return candidates


def history_rows(names: tuple[str, ...], rows: list[torch.Tensor]) -> list[dict[str, float]]:
    """Per-iteration diagnostics as python floats; ``rows`` holds one (len(names),) tensor per iteration.

    Rows are collected as tensors and read back once, so that planning on a GPU does not sync every iteration.
    """
    if not rows:
        return []
    return [dict(zip(names, values)) for values in torch.stack(rows).double().tolist()]


def evaluate_cost(planner: str, cost: CostFn, candidates: torch.Tensor) -> torch.Tensor:
    """``cost(candidates)`` for candidates (B, N, H, ...), checked to be a floating tensor of shape (B, N)."""
    batch, samples = candidates.shape[:2]
    costs = cost(candidates)
    if not isinstance(costs, torch.Tensor) or costs.shape != (batch, samples) or not costs.is_floating_point():
        got = f"{tuple(costs.shape)} {costs.dtype}" if isinstance(costs, torch.Tensor) else type(costs).__name__
        raise WmlabError(
            f"{planner}: the cost function must map candidates {tuple(candidates.shape)} to floating costs of shape "
            f"({batch}, {samples}) (one per instance and candidate, lower is better), got {got}"
        )
    return costs
