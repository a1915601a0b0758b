from collections import Counter

import numpy as np
import pytest

from wmlab.envs.contexts import CONTEXT_SPACES, ContextSchedule, context_space, expert_contexts
from wmlab.errors import WmlabError

# spec/dali.md §8.2: (interpolation, extrapolation, mixed) per training setting
REGION_COUNTS = {
    "walker": {"single_0": (4, 10, 0), "single_1": (4, 9, 0), "double_box": (13, 30, 41)},
    "ball_in_cup": {"single_0": (4, 10, 0), "single_1": (4, 9, 0), "double_box": (13, 30, 41)},
    "cartpole": {"single_0": (4, 10, 0), "single_1": (3, 10, 0), "double_box": (10, 36, 38)},
    "pendulum": {"single_0": (4, 9, 0), "single_1": (4, 9, 0), "double_box": (13, 25, 38)},
}
GRID_SIZES = {"walker": 84, "ball_in_cup": 84, "cartpole": 84, "pendulum": 76}


@pytest.mark.parametrize("env", sorted(CONTEXT_SPACES))
def test_grid_size_and_region_counts_match_spec(env):
    space = context_space(env)
    grid = space.evaluation_grid()
    assert len(grid) == GRID_SIZES[env]
    assert len({tuple(sorted(g.context.items())) for g in grid}) == len(grid), "grid contexts must be distinct"
    assert sum(1 for g in grid if g.changed == ()) == 1, "the default context appears once"
    for setting, expected in REGION_COUNTS[env].items():
        counts = Counter(region for _, region in space.scored_contexts(setting))
        assert (counts["interpolation"], counts["extrapolation"], counts["mixed"]) == expected, setting


def test_scored_single_settings_exclude_default_and_other_feature():
    space = context_space("walker")
    for item, _ in space.scored_contexts("single_1"):
        assert item.changed == ("actuator_strength",)
        assert item.context["gravity"] == 9.81


@pytest.mark.parametrize("env", sorted(CONTEXT_SPACES))
def test_normalization_maps_training_range_onto_minus_one_one(env):
    space = context_space(env)
    lo = {f.name: f.train_range[0] for f in space.features}
    hi = {f.name: f.train_range[1] for f in space.features}
    mid = {f.name: sum(f.train_range) / 2 for f in space.features}
    np.testing.assert_allclose(space.normalize(lo), [-1, -1], atol=1e-6)
    np.testing.assert_allclose(space.normalize(hi), [1, 1], atol=1e-6)
    np.testing.assert_allclose(space.normalize(mid), [0, 0], atol=1e-6)
    assert space.normalize(lo).dtype == np.float32
    beyond = {f.name: f.train_range[1] * 1.5 for f in space.features}
    assert (space.normalize(beyond) > 1).all(), "extrapolation leaves [-1, 1]"


@pytest.mark.parametrize("setting", ["single_0", "single_1", "double_box"])
def test_training_contexts_are_sampled_once_per_seed_inside_the_range(setting):
    space = context_space("ball_in_cup")
    a = space.training_contexts(setting, seed=3)
    assert len(a) == 100
    assert a == space.training_contexts(setting, seed=3)
    assert a != space.training_contexts(setting, seed=4)
    varied = {"single_0": [0], "single_1": [1], "double_box": [0, 1]}[setting]
    for i, f in enumerate(space.features):
        values = np.array([c[f.name] for c in a])
        if i in varied:
            assert values.min() >= f.train_range[0] and values.max() <= f.train_range[1]
            assert values.std() > 0.1 * (f.train_range[1] - f.train_range[0])
        else:
            assert (values == f.default).all()


def test_default_training_set_is_the_default_context():
    space = context_space("cartpole")
    assert space.training_contexts("default", seed=0) == [{"gravity": 9.8, "length": 0.5}]
    with pytest.raises(WmlabError, match="double_box"):
        space.training_contexts("doublebox", seed=0)


def test_schedule_is_a_shuffled_round_robin_per_worker():
    contexts = [{"x": float(i)} for i in range(10)]
    first = [next(ContextSchedule(contexts, seed=1, worker_index=0)) for _ in range(1)]
    schedule = ContextSchedule(contexts, seed=1, worker_index=0)
    passes = [[next(schedule)["x"] for _ in range(10)] for _ in range(3)]
    for p in passes:
        assert sorted(p) == list(range(10)), "each pass visits every context once"
    assert passes[0] != passes[1], "a fresh permutation each pass"
    assert first[0]["x"] == passes[0][0]
    again = ContextSchedule(contexts, seed=1, worker_index=0)
    assert [next(again)["x"] for _ in range(30)] == sum(passes, [])
    other = ContextSchedule(contexts, seed=1, worker_index=1)
    assert [next(other)["x"] for _ in range(10)] != passes[0], "workers visit in different orders"


def test_complete_fills_defaults_accepts_aliases_and_checks_bounds():
    space = context_space("ball_in_cup")
    assert space.complete({"distance": 0.5}) == {"gravity": 9.81, "string_length": 0.5}
    assert space.complete({}) == space.defaults
    with pytest.raises(WmlabError, match="string_length") as e:
        space.complete({"string_lenght": 0.2})
    assert "did you mean" in str(e.value)
    for bad in ({"gravity": 0.0}, {"gravity": -9.81}, {"string_length": -0.1}, {"gravity": float("nan")}):
        with pytest.raises(WmlabError, match="physical bounds"):
            space.complete(bad)
    assert space.outside_training_range(space.complete({"gravity": 19.6})) == ["gravity"]


def test_expert_subsets_the_corner_set_is_the_default_and_four_corners_of_the_full_set():
    full = expert_contexts("pendulum")
    corners = expert_contexts("pendulum", "corners")
    assert len(full) == 19 and len(corners) == 5
    assert all(c in full for c in corners)
    assert corners[0] == {"l": 1.0, "m": 1.0}
    with pytest.raises(WmlabError, match="corners"):
        expert_contexts("pendulum", "corner")
