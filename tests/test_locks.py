import os
import signal
import subprocess
import sys
import time

import pytest

from wmlab.errors import WmlabError
from wmlab.locks import exclusive_writer, lock_path

HOLDER = """
import sys, time
from wmlab.locks import exclusive_writer
with exclusive_writer(sys.argv[1], "run"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_second_writer_is_refused_until_the_first_dies(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(WmlabError, match=rf"the run {run} is being written by process {holder.pid}; wait"):
            with exclusive_writer(run, "run"):
                pass
        with exclusive_writer(run, "dataset", part="features-state"):  # another part of the same folder is free
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel drops the lock of a killed holder: no stale lock blocks the re-run
        try:
            with exclusive_writer(run, "run"):
                break
        except WmlabError:
            assert time.time() < deadline
            time.sleep(0.05)
    assert not run.exists(), "the lock lives beside the folder, which stays absent or empty for a new run"
    assert lock_path(run) == tmp_path / ".run.wmlab-lock"


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with exclusive_writer(tmp_path / "d", "dataset"):
        with exclusive_writer(tmp_path / "d", "dataset"):
            pass
        assert os.path.exists(lock_path(tmp_path / "d"))
    with exclusive_writer(tmp_path / "d", "dataset"):  # released and taken again
        pass
