import json

import numpy as np
import pytest
from typer.testing import CliRunner

import wmlab.cli.analysis  # noqa: F401 - registers `wmlab analyze`
from wmlab.analysis.plausibility import bootstrap_auc, out_of_fold_scores, plausibility_auc
from wmlab.cli import app
from wmlab.errors import WmlabError


def test_identical_datasets_give_chance_and_separable_ones_give_one():
    rng = np.random.default_rng(0)
    original = rng.normal(size=(40, 6, 3))  # (N, H, D) trajectories
    same = plausibility_auc(original, original.copy(), reps=200)
    assert same["auc"] == pytest.approx(0.5) and same["low"] <= 0.5 <= same["high"]
    shifted = plausibility_auc(original, original + 2.0, reps=200)
    assert shifted["auc"] > 0.95 and shifted["low"] > 0.9
    subtle = plausibility_auc(original, original + 0.3 * rng.normal(size=original.shape), reps=200)
    assert subtle["low"] <= subtle["mean"] <= subtle["high"]
    with pytest.raises(WmlabError, match="differ in shape"):
        plausibility_auc(original, original[:, :3])


def test_folds_never_separate_a_pair_and_the_bootstrap_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4))
    x = np.concatenate([x, x])  # each pair is one trajectory twice, once per label
    labels, pairs = np.repeat([0, 1], 20), np.tile(np.arange(20), 2)
    scores = out_of_fold_scores(x, labels, pairs)
    assert np.allclose(scores[:20], scores[20:]), "twins are predicted by the same fold, never trained on"
    noisy = scores + rng.normal(size=40)
    assert bootstrap_auc(noisy, labels, reps=100, seed=3) == bootstrap_auc(noisy, labels, reps=100, seed=3)
    with pytest.raises(WmlabError, match="at least 2"):
        out_of_fold_scores(x[[0, 20]], labels[[0, 20]], pairs[[0, 20]])


def test_plausibility_then_traversal_of_the_most_influential_dimension(dali_run):
    runner = CliRunner()
    args = ["analyze", "plausibility", str(dali_run), "--episodes", "3", "--max-steps", "50", "--horizon", "8"]
    result = runner.invoke(app, [*args, "--stride", "8", "--reps", "100", "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = dali_run / "analysis" / "plausibility"
    report = json.loads((folder / "plausibility.json").read_text())
    aucs = [d["auc"] for d in report["dimensions"]]
    assert len(aucs) == 4 and report["trajectories"] == 3 * 5
    assert report["most_influential"] == int(np.argmax(aucs)) and report["most_influential_label"] in result.output
    assert all(d["low"] <= d["mean"] <= d["high"] for d in report["dimensions"])
    assert (folder / "plausibility.png").stat().st_size > 0
    result = runner.invoke(app, ["analyze", "traversal", str(dali_run), "--horizon", "6", "--max-steps", "20"])
    assert result.exit_code == 0, result.output
    traversal = json.loads((dali_run / "analysis" / "traversal" / "traversal.json").read_text())
    assert [d["dimension"] for d in traversal["dimensions"]] == [report["most_influential"]]
    assert len(traversal["ms"]) == 7
