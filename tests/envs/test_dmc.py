import numpy as np
import pytest

from tests.envs.helpers import random_actions, rollout
from wmlab.envs import context_space, make

CASES = [  # (env, feature, value well away from the default, env options)
    ("walker", "gravity", 2.45, {}),
    ("walker", "actuator_strength", 0.3, {}),
    ("ball_in_cup", "gravity", 2.45, {}),
    ("ball_in_cup", "string_length", 0.15, {}),
    ("ball_in_cup", "gravity", 2.45, {"ball_anchor_shift": False}),
    ("ball_in_cup", "string_length", 0.15, {"ball_anchor_shift": False}),  # only the tendon limit changes
]


@pytest.mark.parametrize("env_name,feature,value,options", CASES)
def test_every_feature_changes_the_dynamics_and_default_comes_back_exactly(env_name, feature, value, options):
    env = make(env_name, obs="state", **options)
    actions = random_actions(env, 60)
    default = rollout(env, {}, actions)
    changed = rollout(env, {feature: value}, actions)
    back = rollout(env, {}, actions)
    # same reset seed: the start is the same unless the anchor moved, and the trajectories must part
    assert np.abs(default - changed).max() > 1e-2
    np.testing.assert_array_equal(default, back)


def test_grid_contexts_are_in_force_after_every_switch():
    walker = make("walker", obs="state").unwrapped
    cup = make("ball_in_cup", obs="state").unwrapped
    for env, name in ((walker, "walker"), (cup, "ball_in_cup")):
        for item in context_space(name).evaluation_grid():
            env.reset(seed=0, options={"context": item.context})
            params = env.physics_parameters()
            np.testing.assert_allclose(params["gravity_vector"], [0, 0, -item.context["gravity"]])
            if name == "walker":
                expected = np.array([100, 50, 20, 100, 50, 20]) * item.context["actuator_strength"]
                np.testing.assert_allclose(params["actuator_gears"], expected)
            else:
                length = item.context["string_length"]
                np.testing.assert_allclose(params["string_tendon_range"], [0, length])
                np.testing.assert_allclose(params["ball_anchor_z"], 0.2 + 0.3 - length)


def _compiled_rollout(xml, assets, physics_cls, task, env, actions, control_timestep):
    """Roll out a freshly compiled model from the same initial state as ``env``'s last reset."""
    from dm_control.rl import control

    fresh = control.Environment(
        physics_cls.from_xml_string(xml, assets), task, time_limit=float("inf"), control_timestep=control_timestep
    )
    fresh.reset()
    with fresh.physics.reset_context():
        fresh.physics.data.qpos[:] = env.physics.data.qpos
        fresh.physics.data.qvel[:] = env.physics.data.qvel
    states = []
    for action in actions:
        ts = fresh.step(action)
        states.append(np.concatenate([np.ravel(v) for v in ts.observation.values()]))
    return np.array(states, np.float32)


def test_walker_in_place_context_matches_carl_compiled_model():
    carl_utils = pytest.importorskip("carl.envs.dmc.dmc_tasks.utils")
    from dm_control.suite import walker

    context = {"gravity": 15.68, "actuator_strength": 0.3}
    env = make("walker", obs="state")
    env.reset(seed=0, options={"context": {"gravity": 2.0, "actuator_strength": 1.9}})  # switch through another
    env.reset(seed=5, options={"context": context})
    actions = random_actions(env, 80)
    xml, assets = walker.get_model_and_assets()
    fresh = _compiled_rollout(
        carl_utils.adapt_context(xml, context),
        assets,
        walker.Physics,
        walker.PlanarWalker(move_speed=1),
        env.unwrapped,
        actions,
        0.025,
    )
    ours = np.array([env.step(a)[0]["state"] for a in actions])
    np.testing.assert_allclose(ours, fresh, atol=1e-4)


def test_ball_in_cup_in_place_context_matches_compiled_model():
    from dm_control.suite import ball_in_cup

    length, gravity = 0.45, 4.9
    env = make("ball_in_cup", obs="state")
    env.reset(seed=0, options={"context": {"string_length": 0.06}})
    env.reset(seed=2, options={"context": {"gravity": gravity, "string_length": length}})
    actions = random_actions(env, 150)
    xml, assets = ball_in_cup.get_model_and_assets()
    xml = xml.decode()
    edited = (
        xml.replace('range="0 0.3"', f'range="0 {length}"')
        .replace('<body name="ball" pos="0 0 .2">', f'<body name="ball" pos="0 0 {0.2 + 0.3 - length}">')
        .replace('<mujoco model="ball in cup">', f'<mujoco model="ball in cup"><option gravity="0 0 {-gravity}"/>')
    )
    assert edited.count(str(length)) >= 1 and edited != xml
    fresh = _compiled_rollout(
        edited.encode(), assets, ball_in_cup.Physics, ball_in_cup.BallInCup(), env.unwrapped, actions, 0.02
    )
    ours = np.array([env.step(a)[0]["state"] for a in actions])
    np.testing.assert_allclose(ours, fresh, atol=1e-4)


def test_pixels_have_the_right_shape_and_show_the_string_length():
    env = make("ball_in_cup", obs="both")
    obs, _ = env.reset(seed=0, options={"context": {"string_length": 0.15}})
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (8,) and obs["state"].dtype == np.float32
    short = obs["image"].astype(int)
    long = env.reset(seed=0, options={"context": {"string_length": 0.45}})[0]["image"].astype(int)
    assert np.abs(short - long).sum() > 1000, "the ball hangs at another height"
    same = env.reset(seed=0, options={"context": {"string_length": 0.15}})[0]["image"].astype(int)
    np.testing.assert_array_equal(short, same)


def test_walker_pixels_and_full_render_flags():
    fast = make("walker", obs="pixels", image_size=32)
    slow = make("walker", obs="pixels", image_size=32, fast_render=False)
    a = fast.reset(seed=0)[0]["image"]
    b = slow.reset(seed=0)[0]["image"]
    assert a.shape == b.shape == (32, 32, 3)
    assert not np.array_equal(a, b), "shadows and reflections are drawn only without fast_render"
