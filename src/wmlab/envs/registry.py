"""Environment registry: ``make`` for one contextual environment, ``make_vector`` for worker processes.

    env = make("ball_in_cup", obs="both", contexts="double_box", seed=0)      # a training distribution
    env = make("walker", obs="state", context={"gravity": 4.0}, seed=0)         # one fixed context
    venv = make_vector("walker", num_envs=4, contexts="double_box", seed=0)     # 4 worker processes

Simulators are imported only when an environment is made, so listing environments stays instant.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from wmlab.envs.contexts import ContextSchedule, ContextSpace, context_space
from wmlab.envs.wrappers import ActionRepeat, ContextScheduleWrapper
from wmlab.errors import WmlabError, unknown_name_error


@dataclass(frozen=True)
class EnvSpec:
    """What ``wmlab envs`` shows about an environment, and where its class lives."""

    name: str
    description: str
    episode_steps: int  # native control steps per episode (time limit before action repeat)
    state_dim: int
    action: str
    class_path: str
    options: tuple[str, ...]  # environment-specific keyword options of the class

    @property
    def context_space(self) -> ContextSpace:
        return context_space(self.name)

    def env_class(self) -> type:
        module, cls = self.class_path.rsplit(".", 1)
        return getattr(importlib.import_module(module), cls)


ENV_SPECS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec(
            "walker",
            "DMC walker-walk (MuJoCo), reward: upright and moving at 1 m/s",
            1000,
            24,
            "continuous 6 in [-1, 1]",
            "wmlab.envs.dmc.Walker",
            ("fast_render", "camera_id"),
        ),
        EnvSpec(
            "ball_in_cup",
            "DMC ball-in-cup catch (MuJoCo), sparse reward: ball inside the cup",
            1000,
            8,
            "continuous 2 in [-1, 1]",
            "wmlab.envs.dmc.BallInCup",
            ("fast_render", "camera_id", "ball_anchor_shift"),
        ),
        EnvSpec(
            "cartpole",
            "CartPole-v1 (CARL semantics), +1 per step until the pole falls",
            500,
            4,
            "discrete 2 (integer or one-hot)",
            "wmlab.envs.classic.CartPole",
            ("consistent_length", "screen_size"),
        ),
        EnvSpec(
            "pendulum",
            "Pendulum-v1 swing-up (CARL semantics), dense cost on angle, velocity, torque",
            200,
            3,
            "continuous 1 in [-1, 1] (torque x2)",
            "wmlab.envs.classic.Pendulum",
            (),
        ),
    )
}


def env_spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``name``; a :class:`WmlabError` lists the valid names."""
    if name not in ENV_SPECS:
        raise unknown_name_error("environment", name, ENV_SPECS)
    return ENV_SPECS[name]


def _episode_contexts(
    space: ContextSpace,
    contexts: str | Sequence[Mapping[str, float]] | None,
    context: Mapping[str, float] | None,
    seed: int,
    n_train_contexts: int,
) -> list[dict[str, float]]:
    if context is not None and contexts is not None:
        raise WmlabError("give either `context` (one fixed context) or `contexts` (a training set), not both")
    if context is not None:
        return [space.complete(context)]
    if contexts is None or isinstance(contexts, str):
        return space.training_contexts(contexts or "default", seed=seed, n=n_train_contexts)
    return [space.complete(c) for c in contexts]


def make(
    name: str,
    obs: str = "state",
    contexts: str | Sequence[Mapping[str, float]] | None = None,
    context: Mapping[str, float] | None = None,
    seed: int = 0,
    worker_index: int = 0,
    n_train_contexts: int = 100,
    context_obs: bool = False,
    action_repeat: int = 1,
    time_limit: int | None = None,
    image_size: int = 64,
    **env_options: Any,
) -> gym.Env:
    """One contextual environment.

    Args:
        name: ``walker``, ``ball_in_cup``, ``cartpole`` or ``pendulum``.
        obs: ``state``, ``pixels`` or ``both``.
        contexts: a training set name (``default``, ``single_0``, ``single_1``, ``double_box``; sampled once from
            ``seed``) or an explicit list of (partial) contexts; episodes visit them in a shuffled round robin.
        context: one fixed (partial) context instead; missing features take their defaults.
        seed: run seed: fixes the training contexts, the visiting order and the first reset.
        worker_index: index of this env among the run's workers (changes order and episodes, not the contexts).
        n_train_contexts: size of the sampled training sets.
        context_obs: add the GT context, normalized to [-1, 1] over the training range, as observation ``context``.
        action_repeat: control steps per agent step (1: native control step, as in DALI).
        time_limit: agent steps per episode (default: the native episode length divided by ``action_repeat``).
        image_size: side of rendered images.
        env_options: environment-specific options (``fast_render``, ``ball_anchor_shift``, ``consistent_length``...).
    """
    spec = env_spec(name)
    episode_contexts = _episode_contexts(spec.context_space, contexts, context, seed, n_train_contexts)
    for key in env_options:
        if key not in spec.options:
            raise unknown_name_error(f"option of {name!r}", key, spec.options)
    env: gym.Env = spec.env_class()(obs=obs, context_obs=context_obs, image_size=image_size, **env_options)
    if action_repeat != 1:
        env = ActionRepeat(env, action_repeat)
    steps = time_limit if time_limit is not None else -(-spec.episode_steps // action_repeat)
    env = gym.wrappers.TimeLimit(env, max_episode_steps=steps)
    return ContextScheduleWrapper(env, ContextSchedule(episode_contexts, seed, worker_index), seed, worker_index)


def make_vector(
    name: str, num_envs: int, seed: int = 0, start_method: str = "forkserver", **make_kwargs: Any
) -> gym.vector.VectorEnv:
    """``num_envs`` environments in worker processes (gymnasium ``AsyncVectorEnv``), worker i with index i.

    All workers share the run's training contexts (sampled from ``seed``); each visits them in its own order and
    draws its own episodes, so the same seed reproduces the same batch of trajectories. Episodes reset
    automatically (gymnasium 0.29 semantics: the final observation is in ``info["final_observation"]``).

    Args:
        start_method: multiprocessing start method; ``forkserver`` keeps the parent's GL state out of the workers.
    """
    if num_envs < 1:
        raise WmlabError(f"num_envs must be >= 1, got {num_envs}")
    env_spec(name)  # fail fast, in this process, on an unknown name
    fns = [functools.partial(make, name, seed=seed, worker_index=i, **make_kwargs) for i in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, context=start_method)
