"""Planners that see only a batched cost function and an action space (spec/latent_actions.md §8).

``cem`` (Gaussian CEM), ``discrete-cem`` (code indices), ``mppi`` and ``gd`` (gradient descent) all implement
:class:`Planner`; :func:`run_mpc` runs any of them in a receding-horizon loop and :func:`goal_mse` is the
feature-space objective. This package imports no model code.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from wmlab.config import from_dict
from wmlab.errors import WmlabError, unknown_name_error
from wmlab.planning.base import (
    ActionSpace,
    BoxSpace,
    CategoricalSpace,
    CostFn,
    Planner,
    PlanResult,
    evaluate_cost,
)
from wmlab.planning.cem import CEM, CEMConfig
from wmlab.planning.discrete_cem import DiscreteCEM, DiscreteCEMConfig
from wmlab.planning.gd import GDConfig, GradientDescent
from wmlab.planning.mpc import MPCConfig, run_mpc, shift_warm_start
from wmlab.planning.mppi import MPPI, MPPIConfig
from wmlab.planning.objectives import frame_weights, goal_mse

PLANNERS: dict[str, tuple[type, type]] = {
    "cem": (CEM, CEMConfig),
    "discrete-cem": (DiscreteCEM, DiscreteCEMConfig),
    "mppi": (MPPI, MPPIConfig),
    "gd": (GradientDescent, GDConfig),
}


def make_planner(name: str, space: ActionSpace, config: Mapping[str, Any] | Any | None = None, **init: Any) -> Planner:
    """Build the planner called ``name`` for ``space``.

    Args:
        name: cem | discrete-cem | mppi | gd.
        space: BoxSpace for cem, mppi and gd; CategoricalSpace for discrete-cem.
        config: the planner's config dataclass, a (partial) mapping of its fields, or None for the defaults.
        **init: further constructor arguments, e.g. ``init_mean``/``init_std`` (d,) or ``zero_action`` (d,) for gd.
    """
    if name not in PLANNERS:
        raise unknown_name_error("planner", name, PLANNERS)
    planner_cls, config_cls = PLANNERS[name]
    if config is None:
        config = config_cls()
    elif isinstance(config, Mapping):
        config = from_dict(config_cls, config, prefix=f"{name}.")
    elif not (dataclasses.is_dataclass(config) and isinstance(config, config_cls)):
        raise WmlabError(f"planner {name!r} takes a {config_cls.__name__} or a mapping, got {type(config).__name__}")
    accepted = [p for p in inspect.signature(planner_cls).parameters if p not in ("space", "cfg")]
    unknown = sorted(set(init) - set(accepted))
    if unknown:
        raise WmlabError(
            f"planner {name!r} does not take {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'nothing more'}"
        )
    return planner_cls(space, config, **init)


__all__ = [
    "CEM",
    "MPPI",
    "PLANNERS",
    "ActionSpace",
    "BoxSpace",
    "CEMConfig",
    "CategoricalSpace",
    "CostFn",
    "DiscreteCEM",
    "DiscreteCEMConfig",
    "GDConfig",
    "GradientDescent",
    "MPCConfig",
    "MPPIConfig",
    "PlanResult",
    "Planner",
    "evaluate_cost",
    "frame_weights",
    "goal_mse",
    "make_planner",
    "run_mpc",
    "shift_warm_start",
]
