import numpy as np
import pytest

from wmlab.envs import context_space, make, make_vector
from wmlab.errors import WmlabError


def test_fixed_context_fills_defaults_and_reports_extrapolation():
    env = make("walker", obs="state", context={"gravity": 4.0}, seed=0)
    _, info = env.reset()
    assert info["context"] == {"gravity": 4.0, "actuator_strength": 1.0}
    assert info["outside_training_range"] == ["gravity"]
    assert env.unwrapped.physics_parameters()["gravity_vector"] == [0.0, 0.0, -4.0]


def test_partial_contexts_never_leak_between_episodes():
    env = make("cartpole")
    env.reset(options={"context": {"gravity": 2.0, "length": 0.9}})
    _, info = env.reset(options={"context": {"length": 0.3}})
    assert info["context"] == {"gravity": 9.8, "length": 0.3}
    assert env.unwrapped.physics_parameters()["gravity"] == 9.8


def test_training_distribution_switches_context_every_episode():
    env = make("pendulum", contexts="double_box", seed=7)
    train = context_space("pendulum").training_contexts("double_box", seed=7)
    seen = [env.reset()[1]["context"] for _ in range(100)]
    assert sorted(map(str, seen)) == sorted(map(str, train)), "one pass visits each training context once"
    again = make("pendulum", contexts="double_box", seed=7)
    assert [again.reset()[1]["context"] for _ in range(5)] == seen[:5]


def test_explicit_context_list_and_reset_override():
    env = make("pendulum", contexts=[{"l": 0.5}, {"l": 1.5}], seed=0)
    lengths = {env.reset()[1]["context"]["l"] for _ in range(4)}
    assert lengths == {0.5, 1.5}
    assert env.reset(options={"context": {"m": 2.0}})[1]["context"] == {"l": 1.0, "m": 2.0}


def test_same_seed_same_episodes_different_seed_different():
    def first_obs(seed):
        return make("walker", seed=seed).reset()[0]["state"]

    np.testing.assert_array_equal(first_obs(3), first_obs(3))
    assert not np.array_equal(first_obs(3), first_obs(4))


def test_context_observation_only_when_asked():
    assert set(make("pendulum").reset()[0]) == {"state"}
    obs, _ = make("pendulum", obs="both", context_obs=True, context={"l": 1.5, "m": 0.5}).reset()
    assert set(obs) == {"state", "image", "context"}
    np.testing.assert_allclose(obs["context"], [1.0, -1.0])


def test_time_limit_truncates_without_terminating_and_action_repeat_shortens_episodes():
    for repeat, expected in ((1, 200), (2, 100), (3, 67)):
        env = make("pendulum", action_repeat=repeat)
        env.reset(seed=0)
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(np.zeros(1))
            steps += 1
        assert (steps, terminated, truncated) == (expected, False, True)


def test_action_repeat_sums_rewards():
    single, double = make("pendulum", seed=1), make("pendulum", seed=1, action_repeat=2)
    single.reset(), double.reset()
    r1 = single.step(np.ones(1))[1] + single.step(np.ones(1))[1]
    obs1 = single.unwrapped._state()
    r2 = double.step(np.ones(1))[1]
    assert r2 == pytest.approx(r1)
    np.testing.assert_array_equal(obs1, double.unwrapped._state())


def test_bad_input_gives_actionable_errors():
    with pytest.raises(WmlabError, match="valid: ball_in_cup, cartpole, pendulum, walker"):
        make("walkerr")
    with pytest.raises(WmlabError, match="actuator_strength"):
        make("walker", context={"actuator": 0.5})
    with pytest.raises(WmlabError, match="physical bounds"):
        make("ball_in_cup", context={"string_length": 0.0})
    with pytest.raises(WmlabError, match="not both"):
        make("walker", context={}, contexts="double_box")
    with pytest.raises(WmlabError, match="observation mode"):
        make("walker", obs="rgb")
    with pytest.raises(WmlabError, match="ball_anchor_shift"):
        make("ball_in_cup", anchor_shift=False)


def _vector_rollout(name, seed, steps=30, num_envs=2, **kwargs):
    venv = make_vector(name, num_envs=num_envs, seed=seed, contexts="double_box", **kwargs)
    try:
        obs, info = venv.reset()
        states, contexts = [obs["state"]], [info["context"]]
        rng = np.random.default_rng(0)
        for _ in range(steps):
            obs, _, _, _, info = venv.step(rng.uniform(-1, 1, venv.action_space.shape).astype(np.float32))
            states.append(obs["state"])
        return np.stack(states), contexts
    finally:
        venv.close()


def test_seeded_vector_envs_are_reproducible():
    a, ctx_a = _vector_rollout("pendulum", seed=5)
    b, ctx_b = _vector_rollout("pendulum", seed=5)
    c, _ = _vector_rollout("pendulum", seed=6)
    assert a.shape == (31, 2, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:, 0], a[:, 1]), "workers run different episodes"
    assert not np.array_equal(a, c)
    assert list(ctx_a[0]) == list(ctx_b[0]), "same training contexts in the same order"
    assert ctx_a[0][0] != ctx_a[0][1], "each worker has its own order"


@pytest.mark.slow
def test_vector_walker_matches_single_process_workers():
    vec, _ = _vector_rollout("walker", seed=1, steps=10)
    rng = np.random.default_rng(0)
    singles = [make("walker", seed=1, worker_index=i, contexts="double_box") for i in range(2)]
    first = np.stack([env.reset()[0]["state"] for env in singles])
    np.testing.assert_array_equal(vec[0], first)
    actions = rng.uniform(-1, 1, (2, 6)).astype(np.float32)
    np.testing.assert_array_equal(vec[1], np.stack([env.step(a)[0]["state"] for env, a in zip(singles, actions)]))
