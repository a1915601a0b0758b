"""Zero-shot evaluation over a context grid and expert/random normalisation (spec/dali.md §8-§9.4).

records = evaluate_grid("runs/w-dali", episodes=50, workers=4)       # -> runs/w-dali/results/eval.jsonl
table = ExpertTable.load("experts/walker/experts.json")
scores = normalized_scores(records, table, context_space("walker"), "double_box")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wmlab.atomic import atomic_write_text
from wmlab.envs.contexts import ContextSpace, context_space
from wmlab.errors import WmlabError
from wmlab.eval.grid import PolicySpec, evaluate_contexts
from wmlab.runs import Checkpointer, RunDir, read_metrics

if TYPE_CHECKING:
    from wmlab.dreamer.config import DreamerConfig


def context_key(context: Mapping[str, float], space: ContextSpace) -> tuple[float, ...]:
    """A hashable key of a context: its feature values rounded to 1e-6, in feature order."""
    return tuple(round(float(context[f.name]), 6) for f in space.features)


def evaluate_grid(
    run: str | Path,
    episodes: int = 50,
    workers: int = 1,
    mode: str = "sample",
    seed: int = 0,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate a run on its environment's whole grid; appends one record per context to ``results/eval.jsonl``."""
    from wmlab.dreamer.config import DreamerConfig

    run_dir = RunDir(run)
    run_dir.require_kind("dreamer")
    cfg = run_dir.load_config(DreamerConfig)
    grid = context_space(cfg.env.name).evaluation_grid()
    records = evaluate_contexts(
        PolicySpec("run", str(run), mode), [g.context for g in grid], episodes, seed, workers, show_progress
    )
    for record, item in zip(records, grid):
        record.update(source="grid", changed=list(item.changed))
    run_dir.results_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.results_dir / "eval.jsonl", "a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return records


def grid_records(run: str | Path) -> list[dict[str, Any]]:
    """The grid records of a run's newest evaluated checkpoint (a later evaluation replaces an earlier one)."""
    records = [r for r in read_metrics(RunDir(run).results_dir / "eval.jsonl") if r.get("source") == "grid"]
    if not records:
        raise WmlabError(f"{run} has no grid evaluation yet; run `wmlab eval {run} --grid` first")
    step = max(r["checkpoint_step"] for r in records)
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r["checkpoint_step"] == step:
            latest[tuple(sorted(r["context"].items()))] = r  # the last evaluation of a context wins
    return list(latest.values())


def trained_to(run: str | Path) -> int:
    """The env step of a run's newest checkpoint (0 without one)."""
    return Checkpointer(RunDir(run).checkpoints_dir).latest_step()


def grid_evaluated(run: str | Path, steps: int) -> bool:
    """Whether a grid evaluation of a checkpoint at ``steps`` or later exists."""
    try:
        records = grid_records(run)
    except WmlabError:
        return False
    return bool(records) and records[0]["checkpoint_step"] >= steps


def train_and_grid_evaluate(cfg: DreamerConfig, run: str | Path, episodes: int, show_progress: bool = False) -> Path:
    """Train a Dreamer run to ``cfg.train.steps`` (resuming) and evaluate that checkpoint on the whole grid, each
    step skipped when already done; what the studies and the quickstart run per job."""
    from wmlab.dreamer.train import train_dreamer

    if trained_to(run) < cfg.train.steps:
        train_dreamer(cfg, run, show_progress=show_progress)
    if not grid_evaluated(run, cfg.train.steps):
        evaluate_grid(run, episodes, 1, show_progress=show_progress)
    return Path(run)


@dataclass
class ExpertTable:
    """Per expert context: the expert return R_expert and the random-policy return R_random (spec §9.2-§9.3)."""

    env: str
    contexts: list[dict[str, float]]
    expert: list[float]
    random: list[float]
    #: ``experts`` (trained per-context experts, spec §9.2) or ``max-return`` (R_expert = the largest return)
    kind: str = "experts"

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ExpertTable:
        path = Path(path)
        if not path.exists():
            raise WmlabError(f"no expert table at {path}; build it with `wmlab experts --env ENV`")
        return cls(**json.loads(path.read_text()))


def normalized_scores(
    records: Sequence[Mapping[str, Any]], table: ExpertTable, space: ContextSpace, setting: str
) -> list[dict[str, Any]]:
    """Normalised score of every context scored for ``setting`` (spec §9.4), with its region.

    Coordinates are min-max scaled over the scored contexts; each context takes the nearest expert context:
    score = (R - R_random(e*)) / (R_expert(e*) - R_random(e*)), not clipped.
    """
    by_key = {context_key(r["context"], space): r for r in records}
    scored = space.scored_contexts(setting)
    missing = [item.context for item, _ in scored if context_key(item.context, space) not in by_key]
    if missing:
        raise WmlabError(
            f"the grid evaluation lacks {len(missing)} scored contexts (e.g. {missing[0]}); "
            "re-run `wmlab eval RUN --grid`"
        )
    names = [f.name for f in space.features]
    coords = np.array([[item.context[n] for n in names] for item, _ in scored])
    low, high = coords.min(0), coords.max(0)
    scale = lambda c: (np.asarray(c) - low) / (high - low + 1e-6)  # noqa: E731
    experts = scale([[c[n] for n in names] for c in table.contexts])
    out = []
    for (item, region), point in zip(scored, scale(coords)):
        nearest = int(np.argmin(np.linalg.norm(experts - point, axis=1)))
        expert, random = table.expert[nearest], table.random[nearest]
        if expert == random:
            raise WmlabError(f"expert and random returns are equal in {table.contexts[nearest]}: cannot normalise")
        ret = by_key[context_key(item.context, space)]["mean"]
        out.append(
            {
                "context": item.context,
                "region": region,
                "setting": setting,
                "return": ret,
                "score": (ret - random) / (expert - random),
                "expert_context": table.contexts[nearest],
            }
        )
    return out
