import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from wmlab.atomic import atomic_write, atomic_write_text
from wmlab.errors import WmlabError
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
    with pytest.warns(UserWarning, match="unreadable"):
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
    truncate_metrics(run.metrics_path, after_step=2)
    assert [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()] == [1, 2]


def test_seed_everything_gives_reproducible_generators():
    a_np, a_t = seed_everything(4)
    b_np, b_t = seed_everything(4)
    assert a_np.random() == b_np.random()
    assert torch.equal(torch.rand(3, generator=a_t), torch.rand(3, generator=b_t))
    assert np.random.rand() != a_np.random()
