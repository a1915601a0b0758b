"""Goal-reaching evaluation (spec latent_actions.md §9): targets, outcomes, calibration rows, the oracle, and the
whole plan loop on a tiny trained world model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.latent.conftest import SMALL
from wmlab.analysis.report import build_report
from wmlab.config import build_config
from wmlab.data.collect import CollectConfig, collect_pusht
from wmlab.data.features import encode_store
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError
from wmlab.eval.goals import calibration_rows, load_or_sample_targets, outcomes, summarize, wilson_interval
from wmlab.eval.oracle import SimulatorCost, goal_distance
from wmlab.eval.planning import LatentGoalProblem, PlanConfig, evaluate_planning
from wmlab.latent.decoder import DecoderConfig, train_decoder
from wmlab.latent.run import load_latent
from wmlab.latent.train import LatentConfig, train_latent


@pytest.fixture(scope="module")
def pusht(tmp_path_factory):
    """A small scripted PushT dataset (real simulator) with its state features."""
    path = tmp_path_factory.mktemp("pusht") / "d"
    collect_pusht(
        CollectConfig(episodes=20, seed=0, image_size=32, min_length=40, max_length=60), path, show_progress=False
    )
    encode_store(path, "state", show_progress=False)
    return path


def _train(pusht, tmp_path_factory, variant):
    overrides = [f"data.path={pusht}", "data.features=state", f"model.variant={variant}", "train.max_steps=40"]
    cfg = build_config(LatentConfig, "latent", "state", overrides=SMALL + overrides)
    path = tmp_path_factory.mktemp(variant) / "run"
    train_latent(cfg, path, show_progress=False)
    return path


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(52, 100)
    assert abs(low - 0.4231) < 1e-3 and abs(high - 0.6153) < 1e-3
    low, high = wilson_interval(0, 100)
    assert low == 0.0 and abs(high - 0.0370) < 1e-3


def test_targets_are_seeded_saved_reused_and_reachable(pusht):
    store = EpisodeStore.open(pusht)
    targets, path = load_or_sample_targets(store, 6, seed=3, show_progress=False)
    again, same_path = load_or_sample_targets(store, 6, seed=3, show_progress=False)
    assert path == same_path and path.exists()
    np.testing.assert_array_equal(targets.goal_states, again.goal_states)
    other, _ = load_or_sample_targets(store, 6, seed=4, show_progress=False)
    assert not np.array_equal(other.init_states, targets.init_states)
    assert set(targets.episodes) <= set(store.episode_indices("val").tolist()), "goals come from validation data"
    assert targets.actions.shape == (6, 25, 2) and targets.goal_frames.shape == (6, 32, 32, 3)
    rows = calibration_rows(targets)
    assert rows["replay"]["success_state"] == 1.0 and rows["replay"]["success_coverage"] == 1.0
    assert rows["null"]["mean_state_dist"] > 0


def test_outcomes_use_both_rules():
    goal = np.array([[100.0, 100.0, 250.0, 250.0, 0.1]])
    near = goal + np.array([[15.0, 0.0, 1.0, 0.0, 2 * np.pi]])  # a full turn is no angle error
    far = goal + np.array([[0.0, 0.0, 30.0, 0.0, 0.0]])
    assert outcomes(goal, near)["success_state"].all() and outcomes(goal, near)["success_coverage"].all()
    assert not outcomes(goal, far)["success_state"].any() and not outcomes(goal, far)["success_coverage"].any()
    row = summarize(outcomes(np.repeat(goal, 2, 0), np.concatenate([near, far])))
    assert row["success_state"] == 0.5 and row["n"] == 2


def test_simulator_cost_is_zero_for_the_recorded_actions_and_ranks_them_first(pusht):
    store = EpisodeStore.open(pusht)
    targets, _ = load_or_sample_targets(store, 2, seed=0, show_progress=False)
    stats = store.attrs["statistics"]
    mean, std = np.asarray(stats["action_mean"]), np.asarray(stats["action_std"])
    recorded = (targets.actions / 100.0 - mean) / std  # (2, 25, 2) normalised -> (2, 1, 5, 10) macro actions
    macro = torch.as_tensor(recorded.reshape(2, 1, 5, 10))
    candidates = torch.cat([macro, torch.zeros_like(macro)], 1)
    costs = SimulatorCost(targets, mean, std)(candidates)
    assert costs.shape == (2, 2)
    assert torch.all(costs[:, 0] < 1e-6) and torch.all(costs[:, 0] <= costs[:, 1])
    assert goal_distance(targets.goal_states[0], targets.goal_states[:1])[0] == 0


def test_plan_loop_runs_every_variant_and_reports_both_rules(pusht, tmp_path_factory):
    cfg = PlanConfig(evals=4, batch=2, videos=1)
    cfg.cem.samples, cfg.cem.elites, cfg.cem.iterations = 16, 4, 2
    cfg.discrete_cem.samples, cfg.discrete_cem.elites, cfg.discrete_cem.iterations = 16, 4, 2
    action_run = _train(pusht, tmp_path_factory, "action")
    result = evaluate_planning(action_run, cfg, show_progress=False)
    saved = json.loads((action_run / "plans" / "cem-open-seed0-n4.json").read_text())
    assert saved["result"]["n"] == 4 and 0.0 <= saved["result"]["success_state"] <= 1.0
    assert {"success_state", "success_coverage", "mean_state_dist", "mean_wm_emb_l2"} <= set(saved["result"])
    assert saved["calibration"]["replay"]["success_state"] == 1.0
    assert len(result["videos"]) == 1 and all(len(v) == 4 for v in result["per_instance"].values())
    with pytest.raises(WmlabError, match="discrete-cem"):
        evaluate_planning(action_run, PlanConfig(planner="discrete-cem", evals=2), show_progress=False)

    vq_run = _train(pusht, tmp_path_factory, "la-vq")
    with pytest.raises(WmlabError, match="train decoder"):
        evaluate_planning(vq_run, PlanConfig(planner="discrete-cem", evals=2), show_progress=False)
    train_decoder(
        vq_run,
        DecoderConfig(train_pairs=200, val_pairs=50, max_epochs=2, dec_dim=16, hidden=32, device="cpu"),
        show_progress=False,
    )
    cfg.planner, cfg.mpc, cfg.max_iter, cfg.n_exec = "discrete-cem", True, 2, 5
    row = evaluate_planning(vq_run, cfg, show_progress=False)["result"]
    assert len(row["success_state_latched_curve"]) == 2 and row["success_state_latched"] >= row["success_state"]

    report = build_report([action_run, vq_run], tmp_path_factory.mktemp("report"))
    page = report.read_text()
    assert "Planning to goals" in page and "data:video/mp4;base64," in page and "data:image/png;base64," in page
    assert "null plan (calibration)" in (report.parent / "report.md").read_text()


def test_the_cost_prefers_the_plan_that_reaches_the_goal_in_a_model_of_the_dynamics(pusht, tmp_path_factory):
    """With the `state` encoder, a world model whose rollout we can predict: the cost must be the goal MSE of the
    imagined last frame, so the candidate whose imagined final token equals the goal's has cost 0."""
    run = _train(pusht, tmp_path_factory, "la")
    model, _, checkpoint = load_latent(run)
    problem = LatentGoalProblem(model, checkpoint, None, 1, torch.device("cpu"))
    current = problem.encode(np.array([[200.0, 200.0, 300.0, 300.0, 1.0]]), None)
    candidates = torch.randn(1, 3, 5, model.cfg.action_dim, generator=torch.Generator().manual_seed(0))
    imagined = problem.rollout(current.expand(3, -1, -1), candidates[0])
    goal = imagined[1:2, -1]  # the second candidate's imagined final frame
    costs = problem.cost_function(current, goal, "last")(candidates)
    assert costs.shape == (1, 3) and costs[0, 1] < 1e-10 and costs[0].argmin() == 1
