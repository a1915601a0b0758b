import numpy as np
import pytest

from wmlab.envs.contexts import context_space, expert_contexts
from wmlab.errors import WmlabError
from wmlab.eval.grid import PolicySpec, evaluate_contexts
from wmlab.eval.stats import interval_estimates, probability_of_improvement
from wmlab.eval.zero_shot import ExpertTable, normalized_scores


def _table(env="pendulum"):
    space = context_space(env)
    contexts = [space.complete(c) for c in expert_contexts(env)]
    rng = np.random.default_rng(0)
    expert = list(rng.uniform(-300, -100, len(contexts)))
    random = list(rng.uniform(-1600, -1200, len(contexts)))
    return ExpertTable(env, contexts, expert, random)


def _records_equal_to(table, which, space, setting):
    """A run whose return in every scored context equals the expert (or random) return of its nearest expert."""
    probe = [{"context": item.context, "mean": 0.0} for item, _ in space.scored_contexts(setting)]
    nearest = normalized_scores(
        probe,
        ExpertTable(table.env, table.contexts, [1.0] * len(table.contexts), [0.0] * len(table.contexts)),
        space,
        setting,
    )
    values = dict(zip(map(str, table.contexts), getattr(table, which)))
    return [{"context": s["context"], "mean": values[str(s["expert_context"])]} for s in nearest]


@pytest.mark.parametrize("setting", ["single_0", "single_1", "double_box"])
def test_expert_scores_one_and_random_scores_zero(setting):
    space, table = context_space("pendulum"), _table()
    for which, expected in (("expert", 1.0), ("random", 0.0)):
        scores = normalized_scores(_records_equal_to(table, which, space, setting), table, space, setting)
        assert len(scores) == len(space.scored_contexts(setting))
        np.testing.assert_allclose([s["score"] for s in scores], expected, atol=1e-9)


def test_nearest_expert_uses_min_max_scaled_coordinates():
    space, table = context_space("walker"), _table("walker")
    records = [{"context": item.context, "mean": 0.0} for item, _ in space.scored_contexts("single_0")]
    scores = normalized_scores(records, table, space, "single_0")
    # single_0 varies gravity only: the nearest expert shares the default actuator strength
    assert all(s["expert_context"]["actuator_strength"] == 1.0 for s in scores)
    far = next(s for s in scores if s["context"]["gravity"] == 19.6)
    assert far["expert_context"]["gravity"] == 19.6 and far["region"] == "extrapolation"


def test_missing_contexts_are_an_error():
    space, table = context_space("pendulum"), _table()
    with pytest.raises(WmlabError, match="eval RUN --grid"):
        normalized_scores([{"context": space.defaults, "mean": 1.0}], table, space, "double_box")


def test_stats_order_methods_and_probability_of_improvement():
    rng = np.random.default_rng(0)
    good, bad = rng.normal(0.9, 0.05, (3, 30)), rng.normal(0.4, 0.05, (3, 30))
    result = interval_estimates({"good": good, "bad": bad}, reps=100)
    assert result["good"]["iqm"]["low"] > result["bad"]["iqm"]["high"]
    g = result["good"]["iqm"]
    assert g["low"] <= g["value"] <= g["high"]
    assert result["bad"]["optimality_gap"]["value"] == pytest.approx(1 - np.minimum(bad, 1).mean())
    p = probability_of_improvement(good, bad, reps=100)
    assert p["value"] == 1.0 and probability_of_improvement(bad, good, reps=100)["value"] == 0.0
    same = probability_of_improvement(good, good, reps=100)["value"]
    assert same == pytest.approx(0.5, abs=0.05)


def test_random_policy_grid_evaluation_is_reproducible_and_worker_independent():
    contexts = [g.context for g in context_space("cartpole").evaluation_grid()[:4]]
    one = evaluate_contexts(PolicySpec("random", "cartpole"), contexts, episodes=3, seed=1, workers=1)
    two = evaluate_contexts(PolicySpec("random", "cartpole"), contexts, episodes=3, seed=1, workers=2)
    assert [r["returns"] for r in one] == [r["returns"] for r in two]
    assert [r["context"] for r in one] == contexts
    assert all(len(r["returns"]) == 3 and r["mode"] == "random" for r in one)
