import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import wmlab.cli.analysis  # noqa: F401 - registers `wmlab analyze`
from wmlab.analysis.context_recording import (
    Recording,
    analysis_contexts,
    load_run_policy,
    record_contexts,
    region_of,
    require_context,
)
from wmlab.analysis.probe import episode_split, fit_ridge_probe, probe_representation, r2_per_feature
from wmlab.cli import app
from wmlab.envs.contexts import context_space
from wmlab.errors import WmlabError


def synthetic_recording(x_of_episode, contexts=20, steps=30, window=4, seed=0):
    """A recording of 2 episodes per context with GT y constant per context and x from ``x_of_episode``."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-1, 1, (contexts, 2))
    rows = {k: [] for k in ("context_id", "episode", "episode_in_context", "t", "fill", "gt", "context")}
    for c in range(contexts):
        for e in range(2):
            x = x_of_episode(gt[c], rng)
            for t in range(steps):
                rows["context_id"].append(c)
                rows["episode"].append(2 * c + e)
                rows["episode_in_context"].append(e)
                rows["t"].append(t)
                rows["fill"].append(min(window, t + 1))
                rows["gt"].append(gt[c])
                rows["context"].append(x + 0.01 * rng.normal(size=x.shape))
    meta = {
        "episodes": 2,
        "window": window,
        "feature_names": ["gravity", "actuator_strength"],
        "train_contexts": "double_box",
        "regions": [{"double_box": "interpolation" if c % 2 else "mixed"} for c in range(contexts)],
        "context_kind": "inferred",
    }
    return Recording(meta, [{}] * contexts, {k: np.asarray(v) for k, v in rows.items()})


def test_ridge_probe_recovers_a_linear_context_and_nothing_from_noise():
    rng = np.random.default_rng(1)
    episodes = np.repeat(np.arange(24), 30)
    y = rng.uniform(-1, 1, (24, 2))[episodes]
    linear = y @ rng.normal(size=(2, 6)) + 0.01 * rng.normal(size=(len(y), 6))
    noise = rng.normal(size=(len(y), 6))
    train, test = episodes < 12, episodes >= 12
    for x, low, high in ((linear, 0.99, 1.0), (noise, -0.3, 0.1)):
        probe = fit_ridge_probe(x[train], y[train], episodes[train])
        r2 = r2_per_feature(y[test], probe.predict(x[test]))
        assert r2.shape == (2,) and np.all((low <= r2) & (r2 <= high)), r2
    assert np.isnan(r2_per_feature(np.ones((5, 1)), np.zeros((5, 1))))[0], "constant targets have no R^2"


def test_the_probe_holds_out_whole_episodes():
    # every episode carries its own random fingerprint unrelated to the context: memorable, not decodable
    rec = synthetic_recording(lambda gt, rng: rng.normal(size=40))
    train, test = episode_split(rec)
    assert not set(rec.steps["episode"][train]) & set(rec.steps["episode"][test])
    assert np.all(rec.steps["episode_in_context"][train] == 0) and np.all(rec.steps["episode_in_context"][test] == 1)
    held_out = probe_representation(rec, rec.steps["context"])
    assert max(held_out["r2"].values()) < 0.3, "episodes never seen in training cannot be recognised"
    # splitting steps instead (for testing and for the CV) would let the probe memorise episodes: a high R^2
    steps = np.random.default_rng(0).random(len(rec)) < 0.5
    x, y = rec.steps["context"], rec.steps["gt"]
    leaky = fit_ridge_probe(x[steps], y[steps], np.arange(steps.sum()))
    assert r2_per_feature(y[~steps], leaky.predict(x[~steps])).min() > 0.9

    decodable = synthetic_recording(
        lambda gt, rng: np.concatenate([gt @ np.array([[1.0, 2.0, 0], [0, 1.0, -1]]), [0.5]])
    )
    result = probe_representation(decodable, decodable.steps["context"])
    assert min(result["r2"].values()) > 0.99
    assert set(result["r2_by_region"]) == {"interpolation", "mixed"}
    assert sorted(result["r2_by_fill"]) == [1, 2, 4] and result["n_test"] == 20 * 27


def test_regions_and_the_dreamer_variant_error():
    space = context_space("walker")
    assert region_of(space, {"gravity": 19.6, "actuator_strength": 1.0}, "single_0") == "extrapolation"
    assert region_of(space, {"gravity": 19.6, "actuator_strength": 1.0}, "single_1") is None
    assert region_of(space, {"gravity": 19.6, "actuator_strength": 1.0}, "double_box") == "mixed"
    assert len(analysis_contexts("walker", "tsne")) == 6 and len(analysis_contexts("pendulum", "grid")) == 76
    assert require_context("dali-d") == "inferred" and require_context("crssm-s") == "ground-truth"
    with pytest.raises(WmlabError, match="no context"):
        require_context("dreamer")


def test_recording_matches_the_training_windows(dali_run, tmp_path):
    policy = load_run_policy(dali_run)
    rec = record_contexts(policy, [{"l": 1.5}, {"m": 0.5}], episodes=2, seed=3, max_steps=20)
    assert len(rec) == 2 * 2 * 20 and rec.steps["context"].shape == (80, 4) and rec.steps["deter"].shape == (80, 16)
    assert np.allclose(rec.steps["gt"][0], context_space("pendulum").normalize({"l": 1.5, "m": 1.0}))
    assert rec.steps["fill"].max() == 8 and rec.full_windows.sum() == 4 * 13
    # c_t of the acting path equals the batched training path on the same episode (spec §13.2)
    wm = policy.agent.wm
    _, a, b = rec.episode_bounds()[1]
    action = torch.as_tensor(rec.steps["action"][a:b])[None]
    batch = {
        "state": torch.as_tensor(rec.steps["state"][a:b])[None],
        "prev_action": torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1),
        "is_first": torch.as_tensor(rec.steps["is_first"][a:b])[None],
    }
    with torch.no_grad():
        trained = wm.infer_context(batch, wm.encode(batch))["context"][0].numpy()
    assert np.allclose(trained, rec.steps["context"][a:b], atol=1e-5)
    again = Recording.load(rec.save(tmp_path / "rec.npz"))
    assert again.meta == rec.meta and all(np.array_equal(again.steps[k], v) for k, v in rec.steps.items())
    assert {"episode", "t", "context_3", "gt_1", "reward"} <= set(again.to_dataframe().columns)


def test_analyze_context_cli_writes_the_probe_and_tsne_maps(dali_run):
    args = ["analyze", "context", str(dali_run), "--max-steps", "24", "--no-progress", "--max-points", "200"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    folder = dali_run / "analysis" / "context"
    probe = json.loads((folder / "probe.json").read_text())
    assert set(probe["probe"]) == {"context", "latent"} and set(probe["probe"]["context"]["r2"]) == {"l", "m"}
    assert len(probe["contexts"]) == 6 and probe["steps"] == 6 * 2 * 24
    for name in ("recording.npz", "probe_fill.png", "tsne_l.png", "tsne_m.png"):
        assert (folder / name).stat().st_size > 0
    assert "R^2 from context" in result.output
