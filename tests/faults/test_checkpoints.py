"""A kill at any moment of a checkpoint write loses no committed checkpoint and leaves no temporary file behind."""

import os
import signal
import subprocess
import sys
import time

import torch

from tests.faults.kill import KILLED, count_write_points, kill_at_write
from wmlab.runs import Checkpointer


def _payload(step: int) -> dict:
    generator = torch.Generator().manual_seed(step)
    return {"step": step, "weights": torch.randn(64, 64, generator=generator), "note": f"state at {step}"}


def _writer(folder, last: int = 4):
    """Save checkpoints 1..last, continuing after the newest readable one (what a resumed trainer does)."""

    def write() -> None:
        checkpoints = Checkpointer(folder, keep=2)
        checkpoints.remove_stale_temporaries()  # as open_run does when a run resumes
        state = checkpoints.load_latest()
        for step in range((state["step"] if state else 0) + 1, last + 1):
            checkpoints.save(step, _payload(step))

    return write


def _assert_committed_checkpoints_are_whole(folder) -> None:
    for path in Checkpointer(folder).paths():
        state = torch.load(path, weights_only=False)
        expected = _payload(state["step"])
        assert path.name == f"ckpt-{state['step']:012d}.pt"
        assert torch.equal(state["weights"], expected["weights"]) and state["note"] == expected["note"]


def test_a_kill_at_every_write_point_loses_no_checkpoint(tmp_path):
    points = count_write_points(_writer(tmp_path / "straight"), tmp_path / "count")
    assert points >= 8  # fsync + rename per save, fsync of the folder, deletion of old ones
    for n in range(1, points + 1):
        folder = tmp_path / f"killed-{n}"
        assert kill_at_write(_writer(folder), n) == KILLED
        _assert_committed_checkpoints_are_whole(folder)  # whatever is visible after the kill is whole
        _writer(folder)()  # the same command again
        names = sorted(p.name for p in folder.iterdir())
        # a kill after the newest was written but before the oldest was pruned keeps one more, pruned at the next save
        assert names[-2:] == ["ckpt-000000000003.pt", "ckpt-000000000004.pt"], (n, names)
        assert names[:-2] in ([], ["ckpt-000000000002.pt"]), (n, names)
        _assert_committed_checkpoints_are_whole(folder)


SAVER = """
import sys, torch
from wmlab.runs import Checkpointer
checkpoints = Checkpointer(sys.argv[1], keep=2)
big = torch.zeros(64, 1024, 1024)  # 256 MB: each write takes a while
for step in range(1, 1000):
    big[0, 0, 0] = step
    checkpoints.save(step, {"step": step, "big": big})
"""


def test_a_real_sigkill_during_a_write_leaves_the_previous_checkpoint_and_no_temporary(tmp_path):
    folder = tmp_path / "ckpts"
    process = subprocess.Popen([sys.executable, "-c", SAVER, str(folder)], start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # kill while the second checkpoint is half written
            if Checkpointer(folder).latest_step() >= 1 and list(folder.glob(".ckpt-*.tmp")):
                break
            assert process.poll() is None, "the saver ended early"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert time.time() < deadline, "never saw a checkpoint being written"
    stale = list(folder.glob(".ckpt-*.tmp"))
    assert stale, "the kill hit a write in progress"
    state = Checkpointer(folder).load_latest()
    assert state is not None and float(state["big"][0, 0, 0]) == state["step"] >= 1
    assert Checkpointer(folder).remove_stale_temporaries() == stale  # what open_run does on resume
    assert not list(folder.glob(".*.tmp"))
