import subprocess
import sys

import numpy as np
import pymunk
import pytest
from gym_pusht.envs import PushTEnv

from wmlab.envs import pusht
from wmlab.envs.pusht import PushT
from wmlab.envs.pusht_geometry import (
    AGENT_RADIUS,
    ARENA_SIZE,
    BLOCK_MASS,
    GOAL_POSE,
    T_RECTS,
    WALL_COORD,
    WALL_RADIUS,
    agent_block_distance,
    agent_block_overlap,
    block_inside_arena,
    sample_initial_state,
    wrap_angle,
)
from wmlab.envs.pusht_success import coverage, state_errors, success_coverage, success_state
from wmlab.errors import WmlabError

TWO_PI = 2 * np.pi


def _gym_pusht() -> PushTEnv:
    env = PushTEnv(obs_type="state")
    env._setup()
    return env


def _reference_reset(env: PushTEnv, state) -> None:
    """DINO-WM's non-legacy reset on gym-pusht's bodies: angle before position, then one 0.01 s step."""
    env._setup()
    env.agent.position = tuple(state[:2])
    env.block.angle = state[4]
    env.block.position = tuple(state[2:4])
    env.space.step(0.01)


def _angle_close(a, b, tol=1e-4):
    return np.all(np.abs(wrap_angle(np.asarray(a) - np.asarray(b))) < tol)


# -- constants (§3.1, §3.2) -------------------------------------------------------------------------------------------
def test_world_body_and_control_constants_match_gym_pusht():
    ref = _gym_pusht()
    assert ref._draw().get_size() == (ARENA_SIZE, ARENA_SIZE)
    walls = {tuple(sorted((tuple(s.a), tuple(s.b)))) for s in ref.space.static_body.shapes}
    lo, hi = WALL_COORD
    assert walls == {((lo, lo), (hi, lo)), ((lo, lo), (lo, hi)), ((lo, hi), (hi, hi)), ((hi, lo), (hi, hi))}
    assert {s.radius for s in ref.space.static_body.shapes} == {WALL_RADIUS}
    assert tuple(ref.space.gravity) == (0, 0) and ref.space.damping == 0
    (agent_shape,) = ref.agent.shapes
    assert ref.agent.body_type == pymunk.Body.KINEMATIC
    assert isinstance(agent_shape, pymunk.Circle) and agent_shape.radius == AGENT_RADIUS
    assert ref.block.mass == BLOCK_MASS
    # gym-pusht sets friction 1 as a plain attribute of the Body, which pymunk ignores: contacts are frictionless.
    assert ref.block.friction == 1 and {s.friction for s in ref.block.shapes} == {0.0}
    rects = sorted(
        [min(v.x for v in s.get_vertices()), min(v.y for v in s.get_vertices())]
        + [max(v.x for v in s.get_vertices()), max(v.y for v in s.get_vertices())]
        for s in ref.block.shapes
    )
    np.testing.assert_array_equal(rects, sorted(T_RECTS.tolist()))
    assert tuple(ref.block.center_of_gravity) != (0, 0), "the pose's reference point is not the centre of gravity"
    np.testing.assert_array_equal(ref.goal_pose, GOAL_POSE)
    assert (ref.k_p, ref.k_v, ref.dt) == (pusht.K_P, pusht.K_V, pusht.DT)
    assert ref.control_hz == pusht.CONTROL_HZ and round(1 / (ref.dt * ref.control_hz)) == pusht.SUBSTEPS
    assert pusht.ACTION_SCALE == 100 and pusht.TARGET_BOUNDS == (15, 497)


# -- reset_to_state (§3.4) --------------------------------------------------------------------------------------------
def test_reset_to_state_round_trip_for_many_states():
    env = PushT(obs="state")
    rng = np.random.default_rng(0)
    states = np.concatenate([rng.uniform(20, 490, (150, 4)), rng.uniform(-4 * np.pi, 4 * np.pi, (150, 1))], axis=1)
    edge_angles = [0.0, 1e-9, -1e-9, TWO_PI - 1e-9, TWO_PI, -TWO_PI + 1e-7, 7 * np.pi]
    edge = [[120.0, 80.0, 300.0, 250.0, angle] for angle in edge_angles]
    overlapping = [[256.0, 300.0, 256.0, 256.0, 0.3]]  # agent inside the stem: the settling step must not move it
    for state in [*states, *edge, *overlapping]:
        obs, info = env.reset(options={"reset_to_state": state})
        np.testing.assert_allclose(obs["state"][:4], state[:4], atol=1e-4)
        assert _angle_close(obs["state"][4], state[4]) and 0 <= obs["state"][4] < TWO_PI
        np.testing.assert_array_equal(info["block_pose"], obs["state"][2:5])
        np.testing.assert_array_equal(info["agent_vel"], [0.0, 0.0])


def test_reset_to_state_fixes_gym_pusht_centre_of_gravity_quirk():
    state = np.array([100.0, 100.0, 256.0, 256.0, np.pi / 4])  # the block exactly on the goal marker
    legacy = PushTEnv(obs_type="state")
    legacy_state, _ = legacy.reset(options={"reset_to_state": state})
    np.testing.assert_allclose(legacy_state[2:4], [287.8, 269.2], atol=0.1)
    assert legacy._get_coverage() == pytest.approx(0.30, abs=0.01)
    obs, info = PushT(obs="state").reset(options={"reset_to_state": state})
    np.testing.assert_allclose(obs["state"], state, atol=1e-9)
    assert info["coverage"] == pytest.approx(1.0)


def test_random_resets_are_seeded_and_non_overlapping():
    env = PushT(obs="state")
    first = [env.reset(seed=3)[0]["state"]] + [env.reset()[0]["state"] for _ in range(30)]
    again = [env.reset(seed=3)[0]["state"]] + [env.reset()[0]["state"] for _ in range(30)]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(env.reset(seed=4)[0]["state"], first[0])
    states = np.array(first)
    assert (agent_block_distance(states) > AGENT_RADIUS).all() and block_inside_arena(states[:, 2:5]).all()
    assert ((states[:, :2] >= 50) & (states[:, :2] < 450)).all() and (
        (states[:, 2:4] >= 100) & (states[:, 2:4] < 400)
    ).all()
    np.testing.assert_array_equal(
        sample_initial_state(np.random.default_rng(7)), sample_initial_state(np.random.default_rng(7))
    )


def test_overlap_test_agrees_with_pymunk_collision():
    ref = _gym_pusht()
    (agent_shape,) = ref.agent.shapes
    rng = np.random.default_rng(1)
    for _ in range(300):
        block = np.array([256.0, 256.0, rng.uniform(0, TWO_PI)])
        agent = block[:2] + rng.uniform(-140, 140, 2)
        ref.agent.position = tuple(agent)
        ref.block.angle, ref.block.position = block[2], tuple(block[:2])
        ref.space.reindex_shapes_for_body(ref.agent)
        ref.space.reindex_shapes_for_body(ref.block)
        touching = any(agent_shape.shapes_collide(s).points for s in ref.block.shapes)
        assert bool(agent_block_overlap(np.r_[agent, block])) == touching


# -- actions and dynamics (§3.2) --------------------------------------------------------------------------------------
def test_relative_action_follows_the_pd_law_over_ten_substeps():
    env = PushT(obs="state")
    start = np.array([100.0, 400.0, 350.0, 150.0, 0.0])  # agent far from the block: no contact
    env.reset(options={"reset_to_state": start})
    action = np.array([0.3, -0.2])
    obs, _, _, _, info = env.step(action)
    target = start[:2] + 100 * action
    p, v = start[:2].copy(), np.zeros(2)
    for _ in range(10):
        v = v + (100 * (target - p) + 20 * (0 - v)) * 0.01
        p = p + v * 0.01
    np.testing.assert_allclose(obs["state"][:2], p, atol=1e-9)
    np.testing.assert_allclose(info["agent_vel"], v, atol=1e-9)
    np.testing.assert_allclose(info["target"], target)
    assert np.linalg.norm(target - obs["state"][:2]) < np.linalg.norm(target - start[:2])
    np.testing.assert_array_equal(obs["state"][2:], start[2:])
    # with the same target, the agent keeps converging on it
    for _ in range(20):
        obs, *_ = env.step(np.zeros(2) + (target - env.state()[:2]) / 100)
    np.testing.assert_allclose(obs["state"][:2], target, atol=1.0)


def test_clip_target_keeps_the_target_inside_the_arena():
    start = [30.0, 30.0, 300.0, 300.0, 0.0]
    free, clipped = PushT(obs="state"), PushT(obs="state", clip_target=True)
    for env in (free, clipped):
        env.reset(options={"reset_to_state": start})
    np.testing.assert_allclose(free.step(np.array([-1.0, 0.5]))[-1]["target"], [-70.0, 80.0])
    np.testing.assert_allclose(clipped.step(np.array([-1.0, 0.5]))[-1]["target"], [15.0, 80.0])


def test_contact_rich_dynamics_equal_gym_pusht_with_the_reference_reset():
    env, ref = PushT(obs="state"), _gym_pusht()
    rng = np.random.default_rng(2)
    contacts = 0
    for _ in range(4):
        state = sample_initial_state(rng)
        state[:2] = state[2:4] + [0.0, -70.0]  # start right next to the block and push into it
        env.reset(options={"reset_to_state": state})
        _reference_reset(ref, state)
        for action in rng.normal(0, 0.2, (30, 2)) + [0.0, 0.15]:
            obs, _, terminated, truncated, info = env.step(action)
            ref_state, *_ = ref.step(np.array(ref.agent.position) + 100 * action)
            np.testing.assert_array_equal(obs["state"], ref_state)
            assert not terminated and not truncated
            contacts += info["n_agent_contacts"]
    assert contacts > 0, "the test must exercise agent-block contacts"


def test_no_termination_on_success_and_info_contents():
    env = PushT(obs="state")
    env.reset(options={"reset_to_state": [100.0, 100.0, *GOAL_POSE]})
    for _ in range(3):
        _, reward, terminated, truncated, info = env.step(np.zeros(2))
        assert (terminated, truncated) == (False, False)
        assert info["coverage"] == pytest.approx(1.0) and reward == pytest.approx(1.0)
    assert set(info) >= {"coverage", "n_contacts", "agent_vel", "block_pose"}
    assert info["n_contacts"] == 0


# -- observations, rendering, rollout (§3.3, §3.5) --------------------------------------------------------------------
@pytest.mark.parametrize("size", [96, 224])
def test_observation_dict_layout(size):
    env = PushT(image_size=size)
    obs, _ = env.reset(seed=0)
    assert obs["state"].dtype == np.float64 and obs["state"].shape == (5,)
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (size, size, 3)
    assert env.observation_space.contains(obs)
    assert set(PushT(obs="state").reset(seed=0)[0]) == {"state"}
    assert set(PushT(obs="pixels", image_size=size).reset(seed=0)[0]) == {"image"}


def test_with_velocity_gives_a_7d_state():
    env = PushT(obs="state", with_velocity=True)
    state = [100.0, 400.0, 350.0, 150.0, 1.0, 30.0, -20.0]
    obs, info = env.reset(options={"reset_to_state": state})
    assert env.observation_space["state"].shape == (7,)
    np.testing.assert_allclose(obs["state"], state, atol=1e-9)  # velocity given: set exactly, not integrated
    obs, _, _, _, info = env.step(np.array([0.1, 0.1]))
    np.testing.assert_array_equal(obs["state"][5:], info["agent_vel"])
    obs, _ = env.reset(options={"reset_to_state": state[:5]})
    np.testing.assert_array_equal(obs["state"][5:], [0.0, 0.0])


def test_rollout_shapes_units_and_determinism():
    env = PushT(obs="state", image_size=96)
    init = np.array([256.0, 420.0, 256.0, 256.0, 0.0])  # agent below the stem's end
    actions_px = np.tile([0.0, -25.0], (8, 1))  # push up into the T, 25 px per step (exact in units of 100 px)
    frames, states = env.rollout(init, actions_px)
    assert frames.shape == (9, 96, 96, 3) and frames.dtype == np.uint8
    assert states.shape == (9, 5) and states.dtype == np.float64
    np.testing.assert_allclose(states[0], init, atol=1e-9)
    np.testing.assert_array_equal(states[-1], env.state())
    again_frames, again_states = env.rollout(init, actions_px)
    np.testing.assert_array_equal(frames, again_frames)
    np.testing.assert_array_equal(states, again_states)
    # same as stepping with actions in units of 100 px
    env.reset(options={"reset_to_state": init})
    stepped = [env.step(a / 100)[0]["state"] for a in actions_px]
    np.testing.assert_array_equal(states[1:], stepped)
    assert np.linalg.norm(states[-1, 2:4] - init[2:4]) > 10, "the push moves the block"
    assert PushT(with_velocity=True, image_size=96).rollout(init, actions_px[:2])[1].shape == (3, 7)
    assert env.rollout(init, np.zeros((0, 2)))[0].shape == (1, 96, 96, 3)


@pytest.mark.parametrize("size", [96, 224, 512])
def test_frames_are_gym_pusht_renders(size):
    env = PushT(image_size=size)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs["image"], env._sim._get_img(env._sim._draw(), size, size))


def test_images_show_the_block_and_the_optional_target():
    env = PushT(image_size=96)
    still = env.rollout([60.0, 60.0, 256.0, 256.0, 0.0], np.zeros((1, 2)))[0]
    moved = env.rollout([60.0, 60.0, 300.0, 320.0, 0.0], np.zeros((1, 2)))[0]
    np.testing.assert_array_equal(still[0], still[1])
    changed = np.abs(still[0].astype(int) - moved[0].astype(int)).sum(axis=-1) > 0
    assert changed.sum() > 100 and not changed[:20, :20].any(), "only the block's neighbourhood changes"
    green = np.array([144, 238, 144])  # pygame's LightGreen goal marker
    with_target = env.render()
    without = PushT(image_size=96, with_target=False)
    without.reset(options={"reset_to_state": env.state()})
    assert (with_target == green).all(-1).sum() > 50 and (without.render() == green).all(-1).sum() == 0


# -- success rules and distances (§3.6) -------------------------------------------------------------------------------
def test_state_rule_position_threshold_is_joint_over_agent_and_block():
    goal = np.array([100.0, 100.0, 250.0, 250.0, 1.0])
    near = goal + [19.0 / np.sqrt(2), 0, 0, 19.0 / np.sqrt(2), 0]  # 19 px jointly
    far = goal + [21.0 / np.sqrt(2), 0, 0, 21.0 / np.sqrt(2), 0]
    assert success_state(goal, near) and not success_state(goal, far)
    assert not success_state(goal, goal + [0, 0, 0, 0, np.deg2rad(21)])
    assert success_state(goal, goal + [0, 0, 0, 0, np.deg2rad(19)])


@pytest.mark.parametrize(
    "goal_angle,angle,expected_deg,success",
    [
        (0.05, TWO_PI - 0.05, np.rad2deg(0.1), True),
        (0.01, TWO_PI - 0.01, np.rad2deg(0.02), True),
        (TWO_PI - 0.01, 0.01, np.rad2deg(0.02), True),
        (0.05, 0.05 + 4 * np.pi, 0.0, True),  # unreduced angle, same orientation
        (0.05, 0.05 + TWO_PI + 1.0, np.rad2deg(1.0), False),  # unreduced angle, 57 degrees off
        (0.05, 0.05 + np.pi, 180.0, False),
    ],
)
def test_state_rule_wraps_angles(goal_angle, angle, expected_deg, success):
    goal = np.array([100.0, 100.0, 250.0, 250.0, goal_angle])
    state = np.r_[goal[:4], angle]
    assert bool(success_state(goal, state)) == success
    assert state_errors(goal, state)["angle_err_deg"] == pytest.approx(expected_deg, abs=1e-9)


def test_reference_angle_formula_fails_on_unreduced_angles_where_the_wrap_does_not():
    delta = 0.05 - (0.05 + TWO_PI + 1.0)
    reference = min(abs(delta), TWO_PI - abs(delta))  # DINO-WM: negative here, so "success" at any angle
    assert reference < np.pi / 9
    assert abs(wrap_angle(delta)) == pytest.approx(1.0)


@pytest.mark.parametrize("shift,expected", [(1.0, (119 * 30 + 29 * 90) / 6300), (5.0, (115 * 30 + 25 * 90) / 6300)])
def test_coverage_rule_on_a_shifted_block(shift, expected):
    goal = np.array([400.0, 400.0, 256.0, 256.0, 0.0])
    state = goal + [-300.0, 0.0, shift, 0.0, 0.0]  # agent far away: ignored
    assert coverage(goal[2:5], state[2:5]) == pytest.approx(expected, abs=1e-9)
    assert bool(success_coverage(goal, state)) == (expected > 0.95)
    assert success_coverage(goal, goal) and coverage(goal[2:5], goal[2:5]) == pytest.approx(1.0)


def test_coverage_equals_gym_pusht():
    ref = _gym_pusht()
    rng = np.random.default_rng(3)
    for _ in range(20):
        goal = np.r_[rng.uniform(200, 300, 2), rng.uniform(0, TWO_PI)]
        block = goal + np.r_[rng.normal(0, 15, 2), rng.normal(0, 0.3)]
        ref.goal_pose = goal
        ref.block.angle, ref.block.position = block[2], tuple(block[:2])
        assert coverage(goal, block) == pytest.approx(ref._get_coverage(), abs=1e-9)


def test_success_rules_and_errors_are_vectorised():
    rng = np.random.default_rng(4)
    goal = np.array([100.0, 100.0, 250.0, 250.0, 0.1])
    states = goal + np.c_[rng.normal(0, 8, (64, 4)), rng.normal(0, 0.3, 64)]
    by_rule = success_state(goal, states), success_coverage(goal, states)
    assert by_rule[0].shape == by_rule[1].shape == (64,) and 0 < by_rule[0].sum() < 64
    for i in range(0, 64, 9):
        assert by_rule[0][i] == success_state(goal, states[i]) and by_rule[1][i] == success_coverage(goal, states[i])
    errors = state_errors(goal, states)
    assert set(errors) == {"state_dist", "pos_err", "agent_pos_err", "block_pos_err", "angle_err_deg"}
    np.testing.assert_allclose(errors["state_dist"], np.linalg.norm(states - goal, axis=1))
    np.testing.assert_allclose(errors["agent_pos_err"], np.linalg.norm(states[:, :2] - goal[:2], axis=1))
    np.testing.assert_allclose(errors["block_pos_err"], np.linalg.norm(states[:, 2:4] - goal[2:4], axis=1))
    seven_d = np.c_[states, np.ones((64, 2))]
    np.testing.assert_array_equal(success_state(goal, seven_d), by_rule[0])


# -- errors and imports -----------------------------------------------------------------------------------------------
def test_user_mistakes_raise_wmlab_error():
    env = PushT(obs="state")
    with pytest.raises(WmlabError, match="reset_to_state"):
        env.reset(options={"reset_to_state": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(WmlabError, match="reset_to_state"):
        env.reset(options={"reset_to_state": [1.0, 2.0, 3.0, 4.0, np.nan]})
    with pytest.raises(WmlabError, match="reset option"):
        env.reset(options={"reset_to": [1.0, 2.0, 3.0, 4.0, 0.0]})
    env.reset(seed=0)
    with pytest.raises(WmlabError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(WmlabError, match=r"\(T, 2\)"):
        env.rollout(np.zeros(5), np.zeros((4, 3)))
    with pytest.raises(WmlabError, match="observation mode"):
        PushT(obs="pixel")
    with pytest.raises(WmlabError, match="PushT states"):
        success_state(np.zeros(4), np.zeros(4))


def test_importing_envs_and_success_rules_does_not_load_the_simulator():
    code = (
        "import sys, wmlab.envs, wmlab.envs.pusht_success; "
        "print(sorted(m for m in ('pygame', 'pymunk', 'gym_pusht') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
