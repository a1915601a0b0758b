import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from wmlab.atomic import atomic_write, atomic_write_text
from wmlab.errors import WmlabError, WmlabWarning
from wmlab.progress import progress_bar
from wmlab.runs import Checkpointer, MetricLogger, RunDir, open_run, read_metrics, seed_everything, truncate_metrics


@dataclass
class Cfg:
    seed: int = 0
    steps: int = 100


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "state.txt"
    atomic_write_text(path, "old")

    def broken(f):
        f.write(b"half of the new")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"], "no temporary file is left behind"


def test_checkpointer_keeps_newest_and_skips_damaged(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    assert ckpt.load_latest() is None and ckpt.latest_step() == 0
    for step in (10, 20, 30):
        ckpt.save(step, {"step": step, "w": torch.full((3,), float(step))})
    assert [p.name for p in ckpt.paths()] == ["ckpt-000000000020.pt", "ckpt-000000000030.pt"]
    assert ckpt.latest_step() == 30
    assert ckpt.load_latest()["step"] == 30
    ckpt.paths()[-1].write_bytes(b"garbage")
    with pytest.warns(WmlabWarning, match="unreadable"):
        assert ckpt.load_latest()["step"] == 20
    ckpt.paths()[0].write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(WmlabError, match="no readable checkpoint"):
        ckpt.load_latest()


def test_open_run_resumes_same_config_and_refuses_another(tmp_path):
    run, resumed = open_run(tmp_path / "r", Cfg())
    assert not resumed and run.exists() and run.checkpoints_dir.is_dir() and run.results_dir.is_dir()
    _, resumed = open_run(tmp_path / "r", Cfg())
    assert resumed
    with pytest.raises(WmlabError, match=r"seed: 0 -> 1"):
        open_run(tmp_path / "r", Cfg(seed=1))
    _, resumed = open_run(tmp_path / "r", Cfg(steps=500), resume_may_change=("steps",))
    assert resumed and RunDir(tmp_path / "r").load_config(Cfg).steps == 500
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("user data")
    with pytest.raises(WmlabError, match="not a wmlab run"):
        open_run(tmp_path / "other", Cfg())


def test_metrics_go_to_jsonl_and_tensorboard_and_truncate_on_resume(tmp_path):
    run = RunDir(tmp_path)
    with MetricLogger(run) as log:
        for step in (1, 2, 3):
            log.log(step, {"loss": 1.0 / step, "bad": float("nan")})
    records = read_metrics(run.metrics_path)
    assert [r["step"] for r in records] == [1, 2, 3] and records[0]["bad"] is None
    assert any(p.name.startswith("events.out.tfevents") for p in run.tb_dir.iterdir())
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 4, "lo')  # a line torn by a kill
    assert len(read_metrics(run.metrics_path)) == 3
    assert truncate_metrics(run.metrics_path, after_step=2) == 3, "the last step logged before the resume"
    assert [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()] == [1, 2]


def test_seed_everything_gives_reproducible_generators():
    a_np, a_t = seed_everything(4)
    b_np, b_t = seed_everything(4)
    assert a_np.random() == b_np.random()
    assert torch.equal(torch.rand(3, generator=a_t), torch.rand(3, generator=b_t))
    assert np.random.rand() != a_np.random()


def test_temporaries_of_interrupted_checkpoint_writes_are_removed(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.save(10, {"step": 10})
    stale = tmp_path / ".ckpt-000000000020.pt.abc123.tmp"  # what a kill inside atomic_write leaves
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / "notes.tmp"
    other.write_text("not ours")
    assert ckpt.load_latest()["step"] == 10
    assert stale.exists(), "loading only reads: an evaluation may run beside a training that writes"
    assert ckpt.remove_stale_temporaries() == [stale]
    assert not stale.exists() and other.exists(), "the stale temporary is removed, and only it"
    stale.write_bytes(b"half again")
    ckpt.save(30, {"step": 30})
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000000010.pt", "ckpt-000000000030.pt", "notes.tmp"]


def test_resuming_a_run_removes_temporaries_of_interrupted_writes(tmp_path):
    run, _ = open_run(tmp_path / "r", Cfg())
    leftovers = [
        run.path / ".metrics.jsonl.x1.tmp",
        run.replay_dir / ".w0-000000000000.npz.x2.tmp",
        run.checkpoints_dir / ".ckpt-000000000100.pt.x3.tmp",
    ]
    for path in leftovers:
        path.write_text("torn")
    open_run(tmp_path / "r", Cfg())
    assert not any(path.exists() for path in leftovers)


def test_run_kind_is_told_from_the_config(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.yaml").write_text("seed: 0\nbehavior: {horizon: 15}\nenv: {name: pendulum}\n")
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "config.yaml").write_text("seed: 0\ndata: {path: x}\nmodel: {variant: la}\n")
    assert RunDir(tmp_path / "d").kind() == "dreamer" and RunDir(tmp_path / "l").kind() == "latent"
    RunDir(tmp_path / "d").require_kind("dreamer")
    with pytest.raises(WmlabError, match=r"is a dreamer run; this command needs a latent run"):
        RunDir(tmp_path / "d").require_kind("latent")
    with pytest.raises(WmlabError, match=r"is a latent run; this command needs a dreamer run"):
        RunDir(tmp_path / "l").require_kind("dreamer")
    with pytest.raises(WmlabError, match="not a wmlab run directory"):
        RunDir(tmp_path / "nowhere").require_kind("dreamer")
    (tmp_path / "d" / "config.yaml").write_bytes(b"\xff\xfe: [unclosed")
    with pytest.raises(WmlabError, match="not valid YAML"):
        RunDir(tmp_path / "d").require_kind("dreamer")


def test_progress_without_a_terminal_is_plain_lines(capsys):
    with progress_bar("encode", 100, "frames", plain_every=None) as advance:  # pytest's stdout is no terminal
        advance(40)  # where a resumed job starts
        advance(10)
        advance(10, line=True, loss=0.5)
        advance(40)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, "one line when asked, one at the end"
    assert lines[0].startswith("encode: 60/100 frames (60%), elapsed 0:00:00, eta ") and lines[0].endswith("loss 0.5")
    assert lines[1].startswith("encode: 100/100 frames (100%)")
    with progress_bar("collect", 3, "episodes", plain_every=0) as advance:
        for _ in range(3):
            advance(1)
    assert len(capsys.readouterr().out.splitlines()) == 3, "with plain_every=0 every update prints, the end adds none"
    with progress_bar("quiet", 3, enabled=False) as advance:
        advance(3, line=True)
    assert capsys.readouterr().out == ""
