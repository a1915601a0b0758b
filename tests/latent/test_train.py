import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.latent.conftest import SMALL
from wmlab.cli import app
from wmlab.config import build_config
from wmlab.errors import WmlabError
from wmlab.latent.train import LatentConfig, batch_indices, train_latent
from wmlab.runs import Checkpointer, read_metrics


def _cfg(dataset, variant, steps):
    overrides = [f"data.path={dataset}", "data.features=state", f"model.variant={variant}", f"train.max_steps={steps}"]
    return build_config(LatentConfig, "latent", "state", overrides=SMALL + overrides)


@pytest.mark.parametrize("variant", ["action", "la-vq"])
def test_training_learns_the_toy_dynamics(dataset, tmp_path, variant):
    train_latent(_cfg(dataset, variant, 150), tmp_path / variant, show_progress=False)
    records = read_metrics(tmp_path / variant / "metrics.jsonl")
    losses = [r["train/latent_pred_loss"] for r in records if "train/latent_pred_loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    final = Checkpointer(tmp_path / variant / "checkpoints").load_latest()
    assert final["step"] == 150 and final["encoder"]["encoder"] == "state" and final["token_shape"] == [1, 5]
    if variant == "la-vq":
        assert len(final["latent_statistics"]["mean"]) == 8 and final["latent_statistics"]["windows"] > 0
    diagnosed = [r["step"] for r in records if "diag/swap_score" in r]
    assert diagnosed == [1, 2, 3, 4, 5, 101, 102, 103, 104, 105], "first 5 batches after each 100-step boundary"
    assert all(0 <= r["diag/swap_score"] <= 1 for r in records if "diag/swap_score" in r)


def test_resumed_training_equals_uninterrupted_training(dataset, tmp_path):
    train_latent(_cfg(dataset, "la", 40), tmp_path / "straight", show_progress=False)
    train_latent(_cfg(dataset, "la", 20), tmp_path / "resumed", show_progress=False)
    train_latent(_cfg(dataset, "la", 40), tmp_path / "resumed", show_progress=False)
    a = Checkpointer(tmp_path / "straight" / "checkpoints").load_latest()["model"]
    b = Checkpointer(tmp_path / "resumed" / "checkpoints").load_latest()["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_a_run_resumed_off_the_logging_schedule_logs_what_an_uninterrupted_one_does(dataset, tmp_path):
    train_latent(_cfg(dataset, "la", 40), tmp_path / "straight", show_progress=False)
    train_latent(_cfg(dataset, "la", 25), tmp_path / "resumed", show_progress=False)  # logs every 10
    train_latent(_cfg(dataset, "la", 40), tmp_path / "resumed", show_progress=False)

    def train_records(run):
        records = read_metrics(run / "metrics.jsonl")
        return {
            r["step"]: {k: v for k, v in r.items() if k.startswith("train/")}
            for r in records
            if "perf/steps_per_s" in r
        }

    straight, resumed = train_records(tmp_path / "straight"), train_records(tmp_path / "resumed")
    assert list(straight) == [10, 20, 30, 40] and list(resumed) == [10, 20, 25, 30, 40]
    for step in straight:  # step 30 averages steps 21-30, across the resume
        assert resumed[step] == pytest.approx(straight[step], rel=1e-6), step


def test_batches_are_seeded_epoch_permutations():
    first_epoch = np.concatenate([batch_indices(100, 10, s, seed=0) for s in range(10)])
    assert sorted(first_epoch) == list(range(100))
    assert not np.array_equal(batch_indices(100, 10, 0, 0), batch_indices(100, 10, 10, 0))
    np.testing.assert_array_equal(batch_indices(100, 10, 13, 0), batch_indices(100, 10, 13, 0))


def test_a_missing_dataset_leaves_no_run_directory(tmp_path):
    cfg = build_config(LatentConfig, "latent", "state", overrides=[f"data.path={tmp_path / 'nowhere'}"])
    with pytest.raises(WmlabError, match="no dataset"):
        train_latent(cfg, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_without_a_terminal_training_prints_a_start_line_and_one_line_per_log(dataset, tmp_path, capsys):
    train_latent(_cfg(dataset, "la", 20), tmp_path / "run", show_progress=True)  # pytest's stdout is no terminal
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("train latent: variant la, data ") and lines[0].endswith("fresh run, 20 steps")
    assert [line.split()[3] for line in lines[1:]] == ["10/20", "20/20"] and all("loss" in x for x in lines[1:])
    train_latent(_cfg(dataset, "la", 30), tmp_path / "run", show_progress=True)
    assert "resumed from the checkpoint at 20 steps (target 30)" in capsys.readouterr().out.splitlines()[0]
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "run")])
    assert "is a latent run; this command needs a dreamer run" in str(result.exception)
