import warnings

import numpy as np
import pytest

from tests.envs.helpers import random_actions, rollout
from wmlab.envs import context_space, make

CASES = [("cartpole", "gravity", 2.45), ("cartpole", "length", 0.9), ("pendulum", "l", 0.3), ("pendulum", "m", 1.8)]


@pytest.mark.parametrize("env_name,feature,value", CASES)
def test_every_feature_changes_the_dynamics_and_default_comes_back_exactly(env_name, feature, value):
    env = make(env_name, obs="state")
    actions = [i % 2 for i in range(8)] if env_name == "cartpole" else random_actions(env, 40)
    default = rollout(env, {}, actions)
    changed = rollout(env, {feature: value}, actions)
    back = rollout(env, {}, actions)
    n = min(len(default), len(changed))
    assert np.abs(default[:n] - changed[:n]).max() > 1e-3
    np.testing.assert_array_equal(default, back)


def test_cartpole_length_follows_carl_and_consistent_length_recomputes():
    carl_like = make("cartpole").unwrapped
    consistent = make("cartpole", consistent_length=True).unwrapped
    for env in (carl_like, consistent):
        env.reset(seed=0, options={"context": {"length": 0.9}})
    assert carl_like.physics_parameters()["polemass_length"] == pytest.approx(0.1 * 0.5)  # CARL leaves it alone
    assert consistent.physics_parameters()["polemass_length"] == pytest.approx(0.1 * 0.9)


def test_grid_contexts_are_in_force_after_every_switch():
    for name, attrs in (("cartpole", {"gravity": "gravity", "length": "length"}), ("pendulum", {"l": "l", "m": "m"})):
        env = make(name).unwrapped
        for item in context_space(name).evaluation_grid():
            env.reset(seed=1, options={"context": item.context})
            params = env.physics_parameters()
            for feature, attr in attrs.items():
                assert params[attr] == item.context[feature]


def _carl_rollout(carl_cls, context, seed, actions):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = carl_cls(contexts={0: context}, obs_context_features=list(context))
    obs, _ = env.reset(seed=seed)
    out = [obs["obs"]]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        out.append(obs["obs"])
        if terminated or truncated:
            break
    return np.array(out, np.float32)


@pytest.mark.parametrize(
    "name,context", [("cartpole", {"gravity": 15.68, "length": 0.3}), ("pendulum", {"l": 1.6, "m": 0.3})]
)
def test_trajectories_equal_carl(name, context):
    carl = pytest.importorskip("carl.envs")
    carl_cls = {"cartpole": carl.CARLCartPole, "pendulum": carl.CARLPendulum}[name]
    full = context_space(name).complete(context)
    if name == "pendulum":
        full = {**full, "g": 10.0}  # CARL's effective gravity; wmlab does not vary it
    env = make(name, context=context)
    actions = [i % 2 for i in range(30)] if name == "cartpole" else [np.array([0.7]), np.array([-0.3])] * 20
    ours = rollout(env, context, actions, seed=11)
    carl_actions = actions if name == "cartpole" else [2.0 * a for a in actions]  # CARL takes native torques
    theirs = _carl_rollout(carl_cls, full, 11, carl_actions)
    np.testing.assert_allclose(ours, theirs[: len(ours)], atol=1e-5)  # action scaling rounds differently
    assert len(ours) == len(theirs)


def test_pixels_differ_between_pole_lengths_and_accept_one_hot():
    env = make("cartpole", obs="pixels")
    short = env.reset(seed=0, options={"context": {"length": 0.2}})[0]["image"]
    long = env.reset(seed=0, options={"context": {"length": 0.9}})[0]["image"]
    assert short.shape == (64, 64, 3) and short.dtype == np.uint8
    assert not np.array_equal(short, long)
    a = make("cartpole")
    b = make("cartpole")
    a.reset(seed=0), b.reset(seed=0)
    np.testing.assert_array_equal(a.step(1)[0]["state"], b.step(np.array([0.0, 1.0]))[0]["state"])


def test_pendulum_pixels_render():
    env = make("pendulum", obs="pixels")
    obs, _ = env.reset(seed=0)
    after = env.step(np.array([1.0]))[0]["image"]
    assert obs["image"].shape == after.shape == (64, 64, 3)
    assert not np.array_equal(obs["image"], after)


@pytest.mark.parametrize("name", ["pendulum", "cartpole"])
def test_render_state_draws_the_frame_of_a_state_observation(name):
    env = make(name, obs="both", seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    if name == "pendulum":
        env.unwrapped._env.last_u = None  # the real frame draws the last torque; a state observation has none
    real = env.unwrapped._render(64)
    drawn = env.unwrapped.render_state(obs["state"], 64)
    assert np.abs(real.astype(int) - drawn.astype(int)).mean() < 1.0
    other = env.unwrapped.render_state(obs["state"] + np.array([0.5, -0.5, 0.0, 0.0][: len(obs["state"])]), 64)
    assert np.abs(other.astype(int) - drawn.astype(int)).mean() > 0.1, "a different state draws a different frame"
    env.close()
