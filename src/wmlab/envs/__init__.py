"""Contextual gymnasium environments (walker, ball_in_cup, cartpole, pendulum) and their context sets.

import wmlab.envs
env = wmlab.envs.make("walker", obs="state", context={"gravity": 4.0}, seed=0)
"""

from wmlab.envs.contexts import (
    CONTEXT_SPACES,
    ContextFeature,
    ContextSchedule,
    ContextSpace,
    GridContext,
    context_space,
)
from wmlab.envs.registry import ENV_SPECS, EnvSpec, env_spec, make, make_vector

__all__ = [
    "CONTEXT_SPACES",
    "ENV_SPECS",
    "ContextFeature",
    "ContextSchedule",
    "ContextSpace",
    "EnvSpec",
    "GridContext",
    "context_space",
    "env_spec",
    "make",
    "make_vector",
]
