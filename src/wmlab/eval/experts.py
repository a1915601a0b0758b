"""Experts and the random baseline that normalise zero-shot scores (spec/dali.md §9.2-§9.3).

An expert is a ``dreamer`` agent in the state modality trained on one fixed context with the main runs' budget.
Runs live in ``ROOT/<env>/<feature0>_<v0>-<feature1>_<v1>/seed<k>``; existing runs are reused (a finished run is not
trained again, an interrupted one resumes). R_expert(c) is the best seed's mean return in its own context, R_random(c)
the best of one uniform-random evaluation per expert seed. ball_in_cup needs no experts: R_expert = 1000.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wmlab.config import build_config
from wmlab.envs.contexts import context_space, expert_contexts
from wmlab.errors import WmlabError
from wmlab.eval.grid import PolicySpec, evaluate_contexts
from wmlab.eval.zero_shot import ExpertTable
from wmlab.runs import Checkpointer

#: environments whose expert return is the maximum episode return, so no expert is trained (spec §9.2)
MAX_RETURN_EXPERTS = {"ball_in_cup": 1000.0}


def expert_run_dir(root: str | Path, env: str, context: dict[str, float], seed: int) -> Path:
    name = "-".join(f"{k}_{v:g}" for k, v in context.items())
    return Path(root) / env / name / f"seed{seed}"


def train_experts(
    env: str,
    root: str | Path,
    seeds: Sequence[int],
    preset: str = "tiny",
    steps: int | None = None,
    overrides: Sequence[str] = (),
    show_progress: bool = True,
    subset: str = "all",
) -> list[Path]:
    """Train (or reuse) one expert per expert context (of ``subset``, see ``expert_contexts``) and seed.
    Returns the run directories."""
    from wmlab.dreamer.config import DreamerConfig
    from wmlab.dreamer.train import train_dreamer

    if env in MAX_RETURN_EXPERTS:
        return []
    runs = []
    for context in expert_contexts(env, subset):
        for seed in seeds:
            extra = {
                "variant": "dreamer",
                "seed": seed,
                "env": {"name": env, "modality": "state", "train_contexts": "specific", "context": context},
            }
            if steps is not None:
                extra["train"] = {"steps": steps}
            cfg = build_config(DreamerConfig, "dreamer", preset, overrides=overrides, extra=extra)
            run = expert_run_dir(root, env, context, seed)
            if Checkpointer(run / "checkpoints").latest_step() < cfg.train.steps:
                train_dreamer(cfg, run, show_progress=show_progress)
            runs.append(run)
    return runs


def build_expert_table(
    env: str,
    root: str | Path,
    seeds: Sequence[int],
    episodes: int,
    workers: int = 1,
    show_progress: bool = True,
    subset: str = "all",
) -> ExpertTable:
    """Evaluate experts and the random policy in every expert context; writes ``ROOT/<env>/experts.json``."""
    contexts = [context_space(env).complete(c) for c in expert_contexts(env, subset)]
    random = [float("-inf")] * len(contexts)
    for seed in seeds:  # one random evaluation per expert seed (environment RNG seed)
        records = evaluate_contexts(PolicySpec("random", env), contexts, episodes, seed * 7919, workers, show_progress)
        random = [max(r, rec["mean"]) for r, rec in zip(random, records)]
    if env in MAX_RETURN_EXPERTS:
        expert = [MAX_RETURN_EXPERTS[env]] * len(contexts)
    else:
        expert = []
        for context in contexts:
            best = float("-inf")
            for seed in seeds:
                run = expert_run_dir(root, env, context, seed)
                if not (run / "config.yaml").exists():
                    raise WmlabError(f"no expert run at {run}: train the experts first (wmlab experts --env {env})")
                record = evaluate_contexts(PolicySpec("run", str(run)), [context], episodes, seed, 1)[0]
                best = max(best, record["mean"])
            expert.append(best)
    table = ExpertTable(env, contexts, expert, random)
    table.save(Path(root) / env / "experts.json")
    return table


#: the largest episode return each environment allows (per-step reward bound x episode length)
MAX_RETURNS = {"pendulum": 0.0, "cartpole": 500.0, "ball_in_cup": 1000.0, "walker": 1000.0}


def build_bounded_table(
    env: str, root: str | Path, episodes: int, workers: int = 1, seed: int = 0, show_progress: bool = True
) -> ExpertTable:
    """A cheap normalisation without trained experts: R_expert = the environment's maximum return (as spec §9.2
    does for ball_in_cup), R_random evaluated in the ``corners`` expert contexts. Scores are then fractions of the
    best possible return above random: comparable between methods, lower than expert-normalised ones. Writes
    ``ROOT/<env>/experts.json``."""
    if env not in MAX_RETURNS:
        raise WmlabError(f"no maximum return is known for {env!r}; train experts with `wmlab experts --env {env}`")
    contexts = [context_space(env).complete(c) for c in expert_contexts(env, "corners")]
    records = evaluate_contexts(PolicySpec("random", env), contexts, episodes, seed * 7919, workers, show_progress)
    table = ExpertTable(env, contexts, [MAX_RETURNS[env]] * len(contexts), [r["mean"] for r in records], "max-return")
    table.save(Path(root) / env / "experts.json")
    return table
