"""Context features, training context sets, evaluation grids and GT-context normalization.

Pure data and numpy: nothing here imports a simulator, so listing environments is instant.
All numbers are those of spec/dali.md §7.6-§8.2.

Vocabulary:
    context       a full dict {feature name: float} with every feature of the environment
    training set  the contexts a run trains on (``default``, ``single_0``, ``single_1``, ``double_box``, ``specific``)
    grid          the evaluation contexts of an environment, each with the features it changes
    region        interpolation / extrapolation / mixed, assigned per training setting
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from wmlab.errors import WmlabError, unknown_name_error

#: Floating-point tolerance used when comparing context values with defaults (spec §8.1).
DEFAULT_TOLERANCE = 1e-6

TRAINING_SETS = ("default", "single_0", "single_1", "double_box")
REGIONS = ("interpolation", "extrapolation", "mixed")


@dataclass(frozen=True)
class ContextFeature:
    """One physical parameter an environment can vary.

    Args:
        name: canonical feature name (``gravity``, ``actuator_strength``, ...).
        default: value of the unmodified environment.
        train_range: closed interval (lo, hi) of the training distribution; GT normalization maps it to [-1, 1].
        bounds: open physical interval; values outside are not a physics the simulator can run.
        interpolate_single / extrapolate_single / interpolate_double / extrapolate_double: evaluation lists (§7.6).
        description: what the feature does to the simulator, for ``wmlab envs``.
        aliases: other accepted names (the DALI release calls ``string_length`` ``distance``).
    """

    name: str
    default: float
    train_range: tuple[float, float]
    interpolate_single: tuple[float, ...]
    extrapolate_single: tuple[float, ...]
    interpolate_double: tuple[float, ...]
    extrapolate_double: tuple[float, ...]
    description: str
    bounds: tuple[float, float] = (0.0, math.inf)
    aliases: tuple[str, ...] = ()

    def check(self, value: float) -> float:
        """``value`` as a float, or a :class:`WmlabError` if it is outside the physical bounds."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise WmlabError(f"context feature {self.name!r} needs a number, got {value!r}") from None
        lo, hi = self.bounds
        if not (lo < value < hi) or not math.isfinite(value):
            raise WmlabError(
                f"context feature {self.name!r}={value:g} is outside its physical bounds ({lo:g}, {hi:g}); "
                f"its training range is [{self.train_range[0]:g}, {self.train_range[1]:g}] and values outside "
                f"that range but inside the bounds are allowed (extrapolation)"
            )
        return value

    def in_train_range(self, value: float) -> bool:
        lo, hi = self.train_range
        return lo <= value <= hi

    def is_default(self, value: float) -> bool:
        return abs(value - self.default) <= DEFAULT_TOLERANCE

    def normalize(self, value: float) -> float:
        """Affine map of the training range onto [-1, 1] (spec §4.1); extrapolation leaves [-1, 1]."""
        lo, hi = self.train_range
        return 2.0 * (value - lo) / (hi - lo) - 1.0


@dataclass(frozen=True)
class GridContext:
    """One evaluation context and the features it changes from the defaults (spec §8.1)."""

    context: dict[str, float]
    changed: tuple[str, ...]


@dataclass(frozen=True)
class ContextSpace:
    """The two context features of one environment, with everything derived from them."""

    env: str
    features: tuple[ContextFeature, ...]
    _by_name: dict[str, ContextFeature] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {}
        for feature in self.features:
            by_name[feature.name] = feature
            for alias in feature.aliases:
                by_name[alias] = feature
        object.__setattr__(self, "_by_name", by_name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def defaults(self) -> dict[str, float]:
        return {f.name: f.default for f in self.features}

    def feature(self, name: str) -> ContextFeature:
        """The feature called ``name`` (or one of its aliases); a :class:`WmlabError` lists the valid names."""
        if name not in self._by_name:
            raise unknown_name_error(f"context feature of {self.env!r}", name, self._by_name)
        return self._by_name[name]

    def complete(self, partial: Mapping[str, float] | None = None) -> dict[str, float]:
        """A full context: defaults overridden by ``partial``, validated against names and physical bounds.

        Always pass full dicts to environments: CARL's gymnasium envs set only the keys present, so a value from an
        earlier context would otherwise survive (spec §12.2).
        """
        context = self.defaults
        for name, value in (partial or {}).items():
            feature = self.feature(name)
            context[feature.name] = feature.check(value)
        return context

    def outside_training_range(self, context: Mapping[str, float]) -> list[str]:
        """Names of the features whose value lies outside the training range (extrapolation)."""
        return [f.name for f in self.features if not f.in_train_range(context[f.name])]

    def normalize(self, context: Mapping[str, float]) -> np.ndarray:
        """GT context c~ in [-1, 1] over the training range. Returns float32 (F,)."""
        return np.array([f.normalize(context[f.name]) for f in self.features], dtype=np.float32)

    def training_contexts(self, setting: str, seed: int, n: int = 100) -> list[dict[str, float]]:
        """The contexts a run trains on (spec §7.7), sampled once from ``seed``.

        ``default`` gives one context; ``single_i`` varies feature i uniformly over its training range with the other
        at its default; ``double_box`` varies both independently.
        """
        if setting not in TRAINING_SETS:
            raise unknown_name_error("training context set", setting, TRAINING_SETS)
        if setting == "default":
            return [self.defaults]
        if n < 1:
            raise WmlabError(f"the number of training contexts must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        varied = {"single_0": [0], "single_1": [1], "double_box": [0, 1]}[setting]
        columns = {}
        for index in varied:
            feature = self.features[index]
            columns[feature.name] = rng.uniform(*feature.train_range, size=n)
        return [{**self.defaults, **{k: float(v[i]) for k, v in columns.items()}} for i in range(n)]

    def evaluation_grid(self) -> list[GridContext]:
        """The evaluation contexts of spec §8.1: feature-0 singles, feature-1 singles, then doubles."""
        f0, f1 = self.features
        grid = []
        for v in sorted(set(f0.interpolate_single + f0.extrapolate_single)):
            changed = () if f0.is_default(v) else (f0.name,)
            grid.append(GridContext({f0.name: v, f1.name: f1.default}, changed))
        for v in sorted(set(f1.interpolate_single + f1.extrapolate_single)):
            if not f1.is_default(v):
                grid.append(GridContext({f0.name: f0.default, f1.name: v}, (f1.name,)))
        for v0 in sorted(set(f0.interpolate_double + f0.extrapolate_double)):
            for v1 in sorted(set(f1.interpolate_double + f1.extrapolate_double)):
                if not f0.is_default(v0) and not f1.is_default(v1):
                    grid.append(GridContext({f0.name: v0, f1.name: v1}, (f0.name, f1.name)))
        return grid

    def scored_contexts(self, setting: str) -> list[tuple[GridContext, str]]:
        """Grid contexts scored for an agent trained on ``setting``, each with its region (spec §8.2)."""
        f0, f1 = self.features
        scored = []
        for item in self.evaluation_grid():
            inside = [f.in_train_range(item.context[f.name]) for f in self.features]
            if setting in ("single_0", "single_1"):
                index = int(setting[-1])
                if item.changed != (self.features[index].name,):
                    continue
                region = "interpolation" if inside[index] else "extrapolation"
            elif setting == "double_box":
                region = "interpolation" if all(inside) else "extrapolation" if not any(inside) else "mixed"
            else:
                raise unknown_name_error("scored training setting", setting, ("single_0", "single_1", "double_box"))
            scored.append((item, region))
        return scored


class ContextSchedule:
    """Which context each episode of one env worker uses: a shuffled round robin over a fixed list (spec §7.7).

    A fresh permutation is drawn at the start of every pass from an RNG seeded by (run seed, worker index), so
    workers of one run see the same contexts in different orders, and the same seed replays the same schedule.
    """

    def __init__(self, contexts: Sequence[Mapping[str, float]], seed: int, worker_index: int = 0):
        if not contexts:
            raise WmlabError("a context schedule needs at least one context")
        self.contexts = [dict(c) for c in contexts]
        self._rng = np.random.default_rng([seed, worker_index])
        self._order: list[int] = []

    def __iter__(self) -> Iterator[dict[str, float]]:
        return self

    def __next__(self) -> dict[str, float]:
        if not self._order:
            self._order = list(self._rng.permutation(len(self.contexts)))
        return dict(self.contexts[self._order.pop(0)])


def _feature(name, default, train_range, isingle, esingle, idouble, edouble, description, **kw) -> ContextFeature:
    return ContextFeature(
        name, default, train_range, tuple(isingle), tuple(esingle), tuple(idouble), tuple(edouble), description, **kw
    )


_GRAVITY_EXTRAPOLATE_SINGLE = (0.98, 1.715, 2.45, 3.185, 3.92, 15.68, 16.66, 17.64, 18.62, 19.6)
_GRAVITY_EXTRAPOLATE_DOUBLE = (0.98, 2.45, 3.92, 15.68, 17.64, 19.6)
_SCALE_EXTRAPOLATE_SINGLE = (0.1, 0.2, 0.3, 0.4, 1.6, 1.7, 1.8, 1.9, 2.0)
_SCALE_EXTRAPOLATE_DOUBLE = (0.1, 0.3, 1.6, 1.8, 2.0)


def _dmc_gravity() -> ContextFeature:
    return _feature(
        "gravity",
        9.81,
        (4.9, 14.7),
        (4.9, 7.35, 9.81, 12.25, 14.7),
        _GRAVITY_EXTRAPOLATE_SINGLE,
        (4.9, 9.81, 14.7),
        _GRAVITY_EXTRAPOLATE_DOUBLE,
        "MuJoCo opt.gravity = (0, 0, -g) [m/s^2]",
    )


CONTEXT_SPACES: dict[str, ContextSpace] = {
    "walker": ContextSpace(
        "walker",
        (
            _dmc_gravity(),
            _feature(
                "actuator_strength",
                1.0,
                (0.5, 1.5),
                (0.5, 0.75, 1.0, 1.25, 1.5),
                _SCALE_EXTRAPOLATE_SINGLE,
                (0.5, 1.0, 1.5),
                _SCALE_EXTRAPOLATE_DOUBLE,
                "every actuator gear multiplied by s (gears 100 50 20 100 50 20)",
            ),
        ),
    ),
    "ball_in_cup": ContextSpace(
        "ball_in_cup",
        (
            _dmc_gravity(),
            _feature(
                "string_length",
                0.3,
                (0.15, 0.45),
                (0.15, 0.225, 0.3, 0.375, 0.45),
                (0.03, 0.06, 0.09, 0.12, 0.48, 0.51, 0.54, 0.57, 0.6),
                (0.15, 0.3, 0.45),
                (0.03, 0.09, 0.48, 0.54, 0.6),
                "range of the spatial tendon 'string' = (0, L) [m]; the ball anchor follows L",
                aliases=("distance",),
            ),
        ),
    ),
    "cartpole": ContextSpace(
        "cartpole",
        (
            _feature(
                "gravity",
                9.8,
                (4.9, 14.7),
                (4.9, 7.35, 9.8, 12.25, 14.7),
                _GRAVITY_EXTRAPOLATE_SINGLE,
                (4.9, 9.8, 14.7),
                _GRAVITY_EXTRAPOLATE_DOUBLE,
                "gravitational acceleration [m/s^2]",
            ),
            _feature(
                "length",
                0.5,
                (0.35, 0.75),
                (0.4, 0.5, 0.6, 0.7),
                (0.1, 0.15, 0.2, 0.25, 0.3, 0.8, 0.85, 0.9, 0.95, 1.0),
                (0.5, 0.7),
                (0.1, 0.2, 0.3, 0.8, 0.9, 1.0),
                "pole half-length [m] (CARL semantics: polemass_length is not recomputed)",
            ),
        ),
    ),
    "pendulum": ContextSpace(
        "pendulum",
        (
            _feature(
                "l",
                1.0,
                (0.5, 1.5),
                (0.5, 0.75, 1.0, 1.25, 1.5),
                _SCALE_EXTRAPOLATE_SINGLE,
                (0.5, 1.0, 1.5),
                _SCALE_EXTRAPOLATE_DOUBLE,
                "pendulum length [m] (the drawn rod does not change)",
            ),
            _feature(
                "m",
                1.0,
                (0.5, 1.5),
                (0.5, 0.75, 1.0, 1.25, 1.5),
                _SCALE_EXTRAPOLATE_SINGLE,
                (0.5, 1.0, 1.5),
                _SCALE_EXTRAPOLATE_DOUBLE,
                "pendulum mass [kg]",
            ),
        ),
    ),
}


#: Expert contexts of spec §9.2: feature-0 values (feature 1 at default), feature-1 values (feature 0 at default),
#: and four corner pairs. The default context appears in both lists; callers pool its runs.
EXPERT_CONTEXTS: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[float, float], ...]]] = {
    "walker": (
        (0.98, 2.45, 3.92, 4.9, 9.81, 14.7, 15.68, 17.64, 19.6),
        (0.1, 0.3, 0.5, 1.0, 1.5, 1.6, 1.8, 2.0),
        ((2.45, 0.3), (17.64, 0.3), (17.64, 1.8), (2.45, 1.8)),
    ),
    "ball_in_cup": (
        (0.98, 2.45, 3.92, 4.9, 9.81, 14.7, 15.68, 17.64, 19.6),
        (0.03, 0.09, 0.15, 0.225, 0.3, 0.45, 0.54, 0.6),
        ((2.45, 0.09), (17.64, 0.09), (17.64, 0.54), (2.45, 0.54)),
    ),
    "cartpole": (
        (0.98, 2.45, 3.92, 4.9, 9.8, 14.7, 15.68, 17.64, 19.6),
        (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0),
        ((2.45, 0.2), (17.64, 0.2), (17.64, 0.9), (2.45, 0.9)),
    ),
    "pendulum": (
        (0.1, 0.3, 0.5, 1.0, 1.5, 1.6, 1.8, 2.0),
        (0.1, 0.3, 0.5, 1.0, 1.5, 1.6, 1.8, 2.0),
        ((0.3, 0.3), (1.8, 0.3), (1.8, 1.8), (0.3, 1.8)),
    ),
}


#: named subsets of the expert contexts: ``all`` is spec §9.2; ``corners`` (the default and the four corner pairs)
#: is a reduced set for CPU-scale studies, whose nearest-expert normalisation is coarser
EXPERT_SUBSETS = ("all", "corners")


def expert_contexts(env: str, subset: str = "all") -> list[dict[str, float]]:
    """The distinct expert contexts of ``env`` (spec §9.2), the default once; ``subset`` picks a reduced set."""
    if subset not in EXPERT_SUBSETS:
        raise unknown_name_error("expert subset", subset, EXPERT_SUBSETS)
    space = context_space(env)
    f0, f1 = space.features
    singles0, singles1, pairs = EXPERT_CONTEXTS[env]
    if subset == "corners":
        return [{f0.name: f0.default, f1.name: f1.default}] + [{f0.name: a, f1.name: b} for a, b in pairs]
    contexts = [{f0.name: v, f1.name: f1.default} for v in singles0]
    contexts += [{f0.name: f0.default, f1.name: v} for v in singles1 if not f1.is_default(v)]
    contexts += [{f0.name: a, f1.name: b} for a, b in pairs]
    return contexts


def context_space(env: str) -> ContextSpace:
    """The :class:`ContextSpace` of environment ``env``; a :class:`WmlabError` lists the valid names."""
    if env not in CONTEXT_SPACES:
        raise unknown_name_error("environment", env, CONTEXT_SPACES)
    return CONTEXT_SPACES[env]
