import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import wmlab.cli.analysis  # noqa: F401 - registers `wmlab analyze`
from tests.analysis.conftest import CONTEXT, FAST, train_tiny
from wmlab.analysis.context_recording import load_run_policy, record_contexts
from wmlab.analysis.counterfactual import decode, imagine, start_points
from wmlab.analysis.perturbation import context_sigma, perturb, perturbation_offsets, resolve_sigma
from wmlab.analysis.plots import side_by_side
from wmlab.cli import app
from wmlab.config import build_config
from wmlab.dreamer.agent import DreamerAgent
from wmlab.dreamer.config import DreamerConfig
from wmlab.errors import WmlabError

runner = CliRunner()


def test_sigma_is_taken_across_windows_and_episodes_not_over_time():
    rng = np.random.default_rng(0)
    per_episode = rng.normal(size=(3, 1, 2))  # each episode's context is constant in time
    windows = np.broadcast_to(per_episode[:, :, None], (3, 10, 8, 2))  # (episode, window, position in window, c)
    assert np.allclose(windows.std(axis=2), 0), "the release's sigma over one window's positions is always zero"
    contexts = windows[:, :, 0]  # one vector per window
    sigma = context_sigma(contexts)
    assert np.all(sigma > 0) and np.allclose(sigma, per_episode[:, 0].std(0))
    mask = np.zeros((3, 10), bool)
    mask[:2] = True  # only the first two episodes have full windows
    assert np.allclose(context_sigma(contexts, mask), per_episode[:2, 0].std(0))
    with pytest.raises(WmlabError, match="at least 2"):
        context_sigma(contexts[:1, :1])


def test_perturbation_shifts_one_dimension_by_m_sigma():
    base = torch.randn(5, 4)
    offsets = perturbation_offsets(5, 6, 3.0, 0.5, "per_trajectory", seed=1)
    assert set(np.abs(offsets)) == {1.5} and offsets.shape == (5,)
    shifted = perturb(base, 2, offsets)
    assert torch.equal(shifted[:, [0, 1, 3]], base[:, [0, 1, 3]])
    assert np.allclose((shifted - base)[:, 2].numpy(), offsets)
    per_step = perturb(base, 0, perturbation_offsets(5, 6, 3.0, 0.5, "per_step", seed=1))
    assert per_step.shape == (5, 6, 4) and len(set(per_step[:, :, 0].flatten().tolist())) > 5
    assert np.all(perturbation_offsets(2, 6, -2.0, 0.5, "fixed", "abs") == -2.0)
    with pytest.raises(WmlabError, match="dimension 4"):
        perturb(base, 4, 1.0)


def _tiny_world_model(variant):
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=[*FAST, *CONTEXT, f"variant={variant}"])
    return DreamerAgent(cfg, obs_dim=3, action_dim=1, discrete=False).wm


@pytest.mark.parametrize("latent", ["mode", "sample"])
def test_a_dimension_the_model_ignores_leaves_imagination_unchanged(latent):
    torch.manual_seed(0)
    wm = _tiny_world_model("dali-s")
    rssm = wm.rssm
    read_by_transition = rssm.stoch_dim * rssm.classes + rssm.action_dim  # first context column of img_in
    with torch.no_grad():
        rssm.img_in[0].weight[:, read_by_transition + 1] = 0.0  # the transition ignores context dimension 1
    n, horizon = 6, 5
    start = {"deter": torch.randn(n, rssm.deter_dim), "stoch": torch.eye(rssm.classes)[torch.randint(0, 4, (n, 4))]}
    context, actions = torch.rand(n, 4), torch.rand(n, horizon, 1) * 2 - 1

    def run(ctx):
        generator = torch.Generator().manual_seed(7)  # common random numbers
        features, _ = imagine(wm, start, ctx, horizon, actions, latent=latent, generator=generator)
        return features, decode(wm, features, obs_dim=3)

    base_features, base_obs = run(context)
    ignored_features, ignored_obs = run(perturb(context, 1, 3.0))
    read_features, read_obs = run(perturb(context, 0, 3.0))
    assert torch.equal(ignored_features, base_features) and np.array_equal(ignored_obs, base_obs)
    assert not torch.allclose(read_features, base_features) and np.abs(read_obs - base_obs).max() > 1e-4
    assert base_obs.shape == (n, horizon, 3)


def test_counterfactual_and_traversal_commands_on_a_trained_run(dali_run):
    policy = load_run_policy(dali_run)
    rec = record_contexts(policy, [{}], episodes=3, max_steps=40)
    sigma = resolve_sigma(rec, "recording")
    assert sigma.shape == (4,) and np.all(sigma > 0), "sigma across windows and episodes is never zero"
    starts = start_points(rec, horizon=10, stride=6)
    assert list(starts.t0[:4]) == [7, 13, 19, 25] and len(starts) == 3 * 4  # t0 = K - 1 + i stride, t0 + H < 40
    assert np.array_equal(starts.future[0], rec.steps["state"][8:18])

    args = ["analyze", "counterfactual", str(dali_run), "--dim", "2", "--episodes", "2", "--max-steps", "40"]
    result = runner.invoke(app, [*args, "--horizon", "10", "--stride", "10", "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = dali_run / "analysis" / "counterfactual"
    summary = json.loads((folder / "d2.json").read_text())
    assert summary["starts"] == 2 * 3 and summary["offset"] == pytest.approx(3 * summary["sigma"][2])
    assert summary["effect_plus"]["mean"] > 0 and len(summary["effect_plus"]["per_dimension"]) == 3
    assert (folder / "d2_obs.png").stat().st_size > 0 and (folder / "d2_effect.png").stat().st_size > 0

    args = ["analyze", "traversal", str(dali_run), "--dim", "1", "--dim", "3", "--horizon", "12", "--max-steps", "30"]
    result = runner.invoke(app, [*args, "--ms", "-2,2", "--no-progress"])
    assert result.exit_code == 0, result.output
    traversal = json.loads((dali_run / "analysis" / "traversal" / "traversal.json").read_text())
    assert traversal["ms"] == [-2.0, 0.0, 2.0] and [d["dimension"] for d in traversal["dimensions"]] == [1, 3]
    assert traversal["dimensions"][0]["action_difference"]["m=+0"] == 0.0
    for name in ("d1_obs.png", "d1_actions.png", "d3_obs.png"):
        assert (dali_run / "analysis" / "traversal" / name).exists()

    bad = runner.invoke(app, ["analyze", "counterfactual", str(dali_run), "--dim", "4", "--max-steps", "30"])
    assert bad.exit_code != 0 and "4 dimensions" in str(bad.exception)


def test_pixel_runs_write_side_by_side_videos(tmp_path):
    frames = side_by_side([np.zeros((3, 8, 8, 3)), np.ones((2, 8, 8, 3), np.float32)], gap=2)
    assert frames.shape == (3, 8, 18, 3) and frames.dtype == np.uint8
    assert frames[2, 0, 0, 0] == 0 and frames[2, 0, 8, 0] == 255 and frames[2, 0, 17, 0] == 255, "gap, repeat"
    run = train_tiny(tmp_path / "pix", "variant=dali-s", "env.modality=pixels", "train.steps=60")
    args = ["analyze", "counterfactual", str(run), "--dim", "0", "--episodes", "2", "--max-steps", "30"]
    result = runner.invoke(app, [*args, "--horizon", "8", "--stride", "10", "--videos", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    video = imageio.mimread(run / "analysis" / "counterfactual" / "d0.mp4")
    assert len(video) == 2 * 8 and video[0].shape == (64, 4 * 64 + 3 * 2, 3)


def test_ground_truth_context_is_perturbed_for_crssm(tmp_path):
    run = train_tiny(tmp_path / "crssm", "variant=crssm-s", "train.steps=100")
    args = ["analyze", "counterfactual", str(run), "--dim", "0", "--episodes", "2", "--max-steps", "30"]
    result = runner.invoke(app, [*args, "--horizon", "6", "--stride", "10", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "analysis" / "counterfactual" / "d0.json").read_text())
    assert summary["context_kind"] == "ground-truth" and summary["label"] == "l"
    assert summary["sigma"][0] > 0.5, "crssm sigma comes from the GT grid (the default context alone has none)"
    assert summary["effect_plus"]["mean"] > 0, "crssm-s re-filters its start states with the shifted GT context"
