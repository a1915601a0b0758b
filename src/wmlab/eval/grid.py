"""Evaluate a policy in many contexts: N episodes per context, batched over episodes, contexts over workers.

All N episodes of one context run side by side in one process so the policy acts on a batch (one forward pass per
step for N envs); contexts are spread over worker processes. Episode j of context i is seeded with
``seed + 1000 * i + j``, so results do not depend on the number of workers.

    records = evaluate_contexts(PolicySpec("run", "runs/w"), contexts, episodes=5, workers=2)
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wmlab.envs import make
from wmlab.errors import WmlabError
from wmlab.progress import progress_bar


@dataclass(frozen=True)
class PolicySpec:
    """What to evaluate, in a form worker processes can rebuild: a trained ``run`` or the uniform ``random`` policy.

    Args:
        kind: ``run`` or ``random``.
        target: run directory (``run``) or environment name (``random``).
        mode: ``sample`` or ``mode`` actions for runs.
    """

    kind: str
    target: str
    mode: str = "sample"


class _RandomActor:
    def __init__(self, space, seed: int):
        self.space = space
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs, is_first):
        n = len(is_first)
        if hasattr(self.space, "n"):
            return self.rng.integers(0, self.space.n, n)
        return self.rng.uniform(-1, 1, (n,) + self.space.shape).astype(np.float32)


def _setup(spec: PolicySpec) -> tuple[Callable, dict[str, Any], int]:
    """(batched actor, env kwargs, checkpoint step) of a policy spec."""
    if spec.kind == "random":
        probe = make(spec.target)
        space = probe.action_space
        probe.close()
        return _RandomActor(space, 0), {"name": spec.target, "obs": "state"}, 0
    if spec.kind != "run":
        raise WmlabError(f"unknown policy kind {spec.kind!r}; use 'run' or 'random'")
    from wmlab.dreamer.policy import load_policy

    policy = load_policy(spec.target, spec.mode, device="cpu")
    cfg = policy.config
    kwargs = {
        "name": cfg.env.name,
        "obs": "state" if cfg.env.modality == "state" else "pixels",
        "action_repeat": cfg.env.action_repeat,
        "image_size": cfg.env.image_size,
    }
    return policy.act, kwargs, policy.step


def _run_context(
    actor: Callable,
    env_kwargs: Mapping[str, Any],
    context: Mapping[str, float],
    episodes: int,
    seed: int,
    reset_policy: Callable | None,
) -> dict[str, Any]:
    kwargs = dict(env_kwargs)
    name = kwargs.pop("name")
    envs = [make(name, context=context, context_obs=True, seed=seed + j, **kwargs) for j in range(episodes)]
    try:
        first_obs = [env.reset(seed=seed + j) for j, env in enumerate(envs)]
        obs = {k: np.stack([o[k] for o, _ in first_obs]) for k in first_obs[0][0]}
        if reset_policy is not None:
            reset_policy(episodes)
        returns, lengths = np.zeros(episodes), np.zeros(episodes, int)
        active = np.ones(episodes, bool)
        is_first = np.ones(episodes, bool)
        while active.any():
            actions = actor(obs, is_first)
            for j in np.flatnonzero(active):
                o, r, terminated, truncated, _ = envs[j].step(actions[j])
                returns[j] += r
                lengths[j] += 1
                for k in obs:
                    obs[k][j] = o[k]
                active[j] = not (terminated or truncated)
            is_first[:] = False
    finally:
        for env in envs:
            env.close()
    return {
        "context": dict(first_obs[0][1]["context"]),
        "returns": returns.tolist(),
        "lengths": lengths.tolist(),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
    }


_WORKER: dict[str, Any] = {}  # the policy of this worker process, loaded once by _init_worker


def _init_worker(spec: PolicySpec, threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    actor, env_kwargs, step = _setup(spec)
    _WORKER.update(spec=spec, actor=actor, env_kwargs=env_kwargs, step=step)


def _evaluate_one(args: tuple[int, Mapping[str, float], int, int]) -> tuple[int, dict[str, Any]]:
    index, context, episodes, seed = args
    spec, actor = _WORKER["spec"], _WORKER["actor"]
    context_seed = seed + 1000 * index
    if spec.kind == "run":
        actor.__self__.seed(context_seed)
        reset = actor.__self__.reset
    else:
        actor.rng = np.random.default_rng(context_seed)
        reset = None
    record = _run_context(actor, _WORKER["env_kwargs"], context, episodes, context_seed, reset)
    record.update(
        env=_WORKER["env_kwargs"]["name"],
        checkpoint_step=_WORKER["step"],
        episodes=episodes,
        mode=spec.mode if spec.kind == "run" else "random",
    )
    return index, record


def evaluate_contexts(
    spec: PolicySpec,
    contexts: Sequence[Mapping[str, float]],
    episodes: int,
    seed: int = 0,
    workers: int = 1,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """One record per context (in the given order): returns of ``episodes`` episodes and their statistics.

    ``workers`` > 1 evaluates contexts in that many processes (one torch thread each).
    """
    if episodes < 1:
        raise WmlabError(f"episodes must be >= 1, got {episodes}")
    tasks = [(i, dict(c), episodes, seed) for i, c in enumerate(contexts)]
    workers = max(1, min(workers, len(tasks)))
    records: dict[int, dict[str, Any]] = {}
    with progress_bar(f"evaluate {len(tasks)} contexts", len(tasks), "contexts", show_progress) as bar:
        if workers == 1:
            _init_worker(spec, threads=0)
            results = map(_evaluate_one, tasks)
            for index, record in results:
                records[index] = record
                bar(1, mean=record["mean"])
        else:
            context = multiprocessing.get_context("forkserver")
            with context.Pool(workers, initializer=_init_worker, initargs=(spec, 1)) as pool:
                for index, record in pool.imap_unordered(_evaluate_one, tasks):
                    records[index] = record
                    bar(1, mean=record["mean"])
    return [records[i] for i in range(len(tasks))]
