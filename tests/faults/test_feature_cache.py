"""The feature cache under kills and damage: `encode_dataset` killed at every write point resumes to the same bytes,
training never reads a partly filled cache, a real SIGKILL of `wmlab encode` resumes the same way, and every damaged
cache file makes `wmlab encode` exit 2 with one line naming it while nothing on disk changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.data.episodes import random_store
from tests.data.test_features import DAMAGE, PROGRESS_DAMAGE, snapshot
from tests.faults.kill import KILLED, count_write_points, kill_at_write
from wmlab.data.features import FeatureCache, encode_dataset, encode_store
from wmlab.encoders import make_encoder
from wmlab.errors import WmlabError

FILES = ["meta.json", "progress.json", "tokens.npy"]


def _store(path, lengths):
    return random_store(path, lengths, image_size=8)


def _encoder(store):
    stats = store.attrs["statistics"]
    return make_encoder("state", mean=stats["state_mean"], std=stats["state_std"])


def _assert_same_cache(folder, reference):
    assert sorted(os.listdir(folder)) == FILES, "no temporaries or strays are left behind"
    for name in FILES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


def _kill_everywhere(store, name, reference, prepare=lambda folder: None):
    """Kill ``encode_dataset`` (4 frames a batch) at each of its write points in turn: the killed cache is refused
    as incomplete or reads as the full reference; a resume killed at its first write point, then an uninterrupted
    resume, give the reference bytes. ``prepare(folder)`` sets up what the folder holds before each first run."""
    expected = FeatureCache(reference).open(store)

    def encode(folder_name):
        return lambda: encode_dataset(store, _encoder(store), folder_name, batch_size=4, show_progress=False)

    prepare(store.path / "features" / f"{name}-count")
    points = count_write_points(encode(f"{name}-count"), store.path.parent / f"{name}.log")
    assert points > 3 * 6, "several batches, each a write point"
    for n in range(1, points + 1):
        folder = store.path / "features" / f"{name}-{n}"
        prepare(folder)
        assert kill_at_write(encode(folder.name), n) == KILLED
        try:
            tokens = FeatureCache(folder).open(store)
        except WmlabError as e:
            assert "is incomplete; re-run the same `wmlab encode` command" in str(e), (n, str(e))
        else:  # only after meta.json says complete, and then every row is there
            np.testing.assert_array_equal(tokens, expected, err_msg=f"killed at write point {n}")
        assert kill_at_write(encode(folder.name), 1) in (KILLED, 0), "a resume can be killed too"
        encode(folder.name)()
        _assert_same_cache(folder, reference)
    return points


def test_encode_killed_at_every_write_point_resumes_to_the_same_bytes(tmp_path):
    store = _store(tmp_path / "d", (7, 9, 6))
    reference = encode_dataset(store, _encoder(store), "reference", batch_size=4, show_progress=False).folder
    assert json.loads((reference / "progress.json").read_text()) == {"frames": 22}
    _kill_everywhere(store, "kill", reference)


def test_a_cache_started_over_never_trusts_leftovers_of_the_previous_one(tmp_path):
    """meta.json deleted by hand: the old progress.json (all frames done), tokens and a stale temporary remain. A kill
    right after the new meta.json appears must not let the old progress mark zeroed tokens complete."""
    store = _store(tmp_path / "d", (7, 9, 6))
    reference = encode_dataset(store, _encoder(store), "reference", batch_size=4, show_progress=False).folder

    def leftovers(folder):
        shutil.copytree(reference, folder)
        (folder / "meta.json").unlink()
        (folder / ".progress.json.x1y2z3.tmp").write_text('{"frames": 4}')

    _kill_everywhere(store, "over", reference, leftovers)


def _cli(monkeypatch, capsys, *args):
    from wmlab.cli import main

    monkeypatch.setattr(sys, "argv", ["wmlab", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err


ALL_DAMAGE = {**DAMAGE, **PROGRESS_DAMAGE}
CASES = [(damage, complete) for damage in ALL_DAMAGE for complete in (True, False) if "progress" not in damage] + [
    (damage, False) for damage in PROGRESS_DAMAGE
]


@pytest.mark.parametrize(
    ("damage", "complete"), CASES, ids=[f"{d}-{'complete' if c else 'incomplete'}" for d, c in CASES]
)
def test_wmlab_encode_on_a_damaged_cache_exits_2_with_one_line_and_changes_nothing(
    tmp_path, monkeypatch, capsys, damage, complete
):
    store = _store(tmp_path / "d", (7, 9))
    code, err = _cli(monkeypatch, capsys, "encode", store.path, "--encoder", "state", "--batch-size", "4")
    assert code == 0, err
    folder = store.path / "features" / "state"
    if not complete:  # as a run killed after 8 of 16 frames leaves it
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, "complete": False}))
        (folder / "progress.json").write_text(json.dumps({"frames": 8}))
    name, damage_file = ALL_DAMAGE[damage]
    damage_file(folder / name)
    before = snapshot(store.path)
    code, err = _cli(monkeypatch, capsys, "encode", store.path, "--encoder", "state", "--batch-size", "4")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert str(folder / name) in lines[0] and f"delete the folder {folder}" in lines[0], lines[0]
    assert snapshot(store.path) == before, "nothing was written, moved or deleted"


@pytest.mark.slow
def test_sigkilled_wmlab_encode_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path):
    store = _store(tmp_path / "d", (250, 250, 250, 250))
    total = 1000
    reference = encode_store(store.path, "state", batch_size=256, show_progress=False, device="cpu").folder
    reference = reference.rename(reference.with_name("reference"))  # the run below writes features/state again
    folder = store.path / "features" / "state"
    command = [sys.executable, "-m", "wmlab", "encode", str(store.path), "--encoder", "state", "--batch-size", "1"]
    command += ["--device", "cpu"]
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        done, deadline = 0, time.monotonic() + 60
        while done < 50 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
            try:
                done = json.loads((folder / "progress.json").read_text())["frames"]
            except (OSError, ValueError):  # not created yet
                pass
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    done = json.loads((folder / "progress.json").read_text())["frames"]
    assert 50 <= done < total, f"killed mid-way, at {done} of {total} frames"
    with pytest.raises(WmlabError, match="incomplete"):
        FeatureCache(folder).open(store)
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    _assert_same_cache(folder, reference)
