"""Kill episode-store writers at every write point; the re-run must give the uninterrupted run's data, bit for bit.

Also: a real SIGKILL of ``wmlab collect pusht``, and damaged dataset files that must give one clear error line.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.data.episodes import random_episode
from tests.faults.kill import KILLED, count_write_points, kill_at_write
from wmlab.cli import main
from wmlab.data import trajectories
from wmlab.data.collect import CollectConfig, collect_pusht
from wmlab.data.trajectories import FIELDS, EpisodeStore
from wmlab.errors import WmlabError

SIZE = 8
SPLITS = ("train", "val", "train")
ARRAYS = (*FIELDS, "episode_ends", "split")


def _episode(index: int) -> dict[str, np.ndarray]:
    return random_episode(np.random.default_rng(index), 3 + index, SIZE)


def _store_writer(path: Path, episodes: int):
    """A writer that creates (or resumes) a store, appends ``episodes`` tiny episodes with a running total, and
    finalizes: the pattern of ``collect_pusht`` and ``import_dinowm``."""

    def write() -> None:
        exists = (path / "zarr.json").exists()
        store = EpisodeStore.resume(path) if exists else EpisodeStore.create(path, SIZE, {"origin": "test"})
        for i in range(store.num_episodes, episodes):
            steps = store.committed["extra"].get("steps", 0) + len(_episode(i)["images"])
            store.append_episode(_episode(i), SPLITS[i], extra={"steps": steps})
        store.finalize({"steps": store.committed["extra"]["steps"]})

    return write


def snapshot(path: Path) -> dict:
    """Every array (whole, as stored) and every attribute of a complete store."""
    store = EpisodeStore.open(path)
    arrays = {name: np.asarray(store.group[name][:]) for name in ARRAYS}
    return {"arrays": arrays, "attrs": store.attrs}


def assert_same_store(path: Path, reference: dict) -> None:
    got = snapshot(path)
    assert got["attrs"] == reference["attrs"]
    for name, array in reference["arrays"].items():
        assert got["arrays"][name].dtype == array.dtype and got["arrays"][name].shape == array.shape, name
        np.testing.assert_array_equal(got["arrays"][name], array, err_msg=name)


def assert_only_whole_episodes(path: Path, reference: dict) -> None:
    """After a kill: opening is refused, and what the commit record shows is a prefix of whole episodes."""
    with pytest.raises(WmlabError, match="no dataset|re-run the same collect / import command"):
        EpisodeStore.open(path)
    if not (path / "zarr.json").exists():
        return
    view = EpisodeStore._open(path, writable=False)
    count, ends = view.num_episodes, reference["arrays"]["episode_ends"]
    assert view.episode_ends.tolist() == ends[:count].tolist()
    assert view.read("split").tolist() == reference["arrays"]["split"][:count].tolist()
    assert view.committed["rows"] == (ends[count - 1] if count else 0)
    for i in range(count):
        start, end = view.bounds(i)
        for name, values in view.episode(i).items():
            np.testing.assert_array_equal(values, reference["arrays"][name][start:end])


def test_store_writer_killed_at_every_write_point_resumes_bit_identical(tmp_path, monkeypatch):
    # 4-frame image chunks: episodes of 3-5 frames straddle chunks and share them with committed episodes
    monkeypatch.setattr(trajectories, "IMAGE_CHUNK", 4)
    _store_writer(tmp_path / "reference", 3)()
    reference = snapshot(tmp_path / "reference")
    points = count_write_points(_store_writer(tmp_path / "counted", 3), tmp_path / "count.log")
    assert points > 60  # create, three appends, finalize
    for n in range(1, points + 1):
        path = tmp_path / f"killed-{n}"
        assert kill_at_write(_store_writer(path, 3), n) == KILLED, n
        assert_only_whole_episodes(path, reference)
        _store_writer(path, 3)()
        assert_same_store(path, reference)
        assert not list(path.rglob("*.partial")), "resume removes zarr's temporary files"


def test_a_legacy_store_torn_inside_episode_ends_keeps_its_whole_episodes(tmp_path):
    """A store without a commit record, left by the old writer with a grown but unwritten ``episode_ends``."""
    path = tmp_path / "d"
    store = EpisodeStore.create(path, SIZE, {"origin": "test"})
    store.append_episode(_episode(0), "train")
    del store.group.attrs["committed"]
    store.group["images"].append(_episode(1)["images"], axis=0)
    store.group["split"].append(np.array([1], np.int8))
    store.group["episode_ends"].resize((2,))  # the old append's shape write, killed before its chunk write
    resumed = EpisodeStore.resume(path)
    assert resumed.num_episodes == 1 and resumed.group["images"].shape[0] == 3
    resumed.append_episode(_episode(1), "val")
    resumed.finalize()
    assert EpisodeStore.open(path).lengths.tolist() == [3, 4]


# seed 1: both episodes touch and move the block, so the committed running totals are not all zero
COLLECT = CollectConfig(episodes=2, seed=1, image_size=16, min_length=15, max_length=25, val_fraction=0.5)


def test_collect_killed_at_sampled_write_points_resumes_bit_identical(tmp_path):
    collect_pusht(COLLECT, tmp_path / "reference", show_progress=False)
    reference = snapshot(tmp_path / "reference")
    assert reference["attrs"]["committed"]["extra"] == {"contacts": 17, "moved": 2}
    points = count_write_points(
        lambda: collect_pusht(COLLECT, tmp_path / "counted", show_progress=False), tmp_path / "c"
    )
    for n in range(1, points + 1, 4):  # every 4th point: the store writer above covers each point
        path = tmp_path / f"killed-{n}"
        assert kill_at_write(lambda path=path: collect_pusht(COLLECT, path, show_progress=False), n) == KILLED
        assert_only_whole_episodes(path, reference)
        collect_pusht(COLLECT, path, show_progress=False)
        assert_same_store(path, reference)


def _committed_episodes(path: Path) -> int:
    try:  # zarr.json is replaced atomically: it is either the old or the new record
        return json.loads((path / "zarr.json").read_text())["attributes"]["committed"]["episodes"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_sigkilled_collect_command_resumes_bit_identical(tmp_path):
    out, episodes = tmp_path / "killed", 8
    command = [sys.executable, "-m", "wmlab", "collect", "pusht", "--out", str(out), "--episodes", str(episodes)]
    command += ["--size", "16"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _committed_episodes(out) < 2 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "killed before it finished"
    assert 2 <= _committed_episodes(out) < episodes
    with pytest.raises(WmlabError, match="re-run the same"):
        EpisodeStore.open(out)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    collect_pusht(CollectConfig(episodes=episodes, seed=0, image_size=16), tmp_path / "fresh", show_progress=False)
    assert_same_store(out, snapshot(tmp_path / "fresh"))


# -- damaged files: one error line, exit 2, nothing written -------------------------------------------------------
def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, list[str]]:
    """``wmlab ARGS`` in-process through the real entry point; returns the exit status and stderr's lines."""
    monkeypatch.setattr(sys, "argv", ["wmlab", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err.strip().splitlines()


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """A complete 3-episode store whose images sit in 4-frame chunks (episode 1 owns rows 3-6: chunks 0 and 1)."""
    monkeypatch.setattr(trajectories, "IMAGE_CHUNK", 4)
    _store_writer(tmp_path / "d", 3)()
    return tmp_path / "d"


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_a_damaged_image_chunk_is_named_with_its_episodes(dataset, damage, monkeypatch, capsys):
    chunk = dataset / "images" / "c" / "1" / "0" / "0" / "0"  # rows 4-7: episodes 1 (val) and 2 (train)
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:40] + b"\xff" * 32 + data[72:])
    before = _files(dataset)
    status, lines = run_cli(["data", "info", str(dataset)], monkeypatch, capsys)
    assert status == 0, "info without --check reads no images"
    status, lines = run_cli(["data", "info", str(dataset), "--check"], monkeypatch, capsys)
    assert status == 2 and len(lines) == 1, lines
    assert str(chunk) in lines[0] and "episodes 1 (val), 2 (train)" in lines[0], lines[0]
    assert "re-create the dataset" in lines[0] and "Traceback" not in lines[0]
    assert _files(dataset) == before, "checking writes nothing"
    with pytest.raises(WmlabError, match=r"images/c/1/0/0/0 does not decode .*episodes 1 \(val\)"):
        EpisodeStore.open(dataset).episode(1)
    assert EpisodeStore.open(dataset).episode(0)["images"].shape == (3, SIZE, SIZE, 3), "other episodes still read"


def test_a_damaged_vector_chunk_fails_info_and_statistics(dataset, monkeypatch, capsys):
    chunk = dataset / "rel_actions" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    status, lines = run_cli(["data", "info", str(dataset)], monkeypatch, capsys)
    assert status == 2 and len(lines) == 1 and str(chunk) in lines[0], lines
    assert "episodes 0 (train), 1 (val), 2 (train)" in lines[0]
    with pytest.raises(WmlabError, match="rel_actions/c/0/0 does not decode"):
        EpisodeStore.open(dataset).compute_statistics()


@pytest.mark.parametrize("target", ["zarr.json", "states/zarr.json", "episode_ends/zarr.json"])
def test_a_damaged_zarr_json_gives_one_line(dataset, target, monkeypatch, capsys):
    file = dataset / target
    file.write_bytes(file.read_bytes()[:-20])
    before = _files(dataset)
    video = dataset.parent / "episode.gif"
    for args in (["data", "info", str(dataset), "--check"], ["data", "show", str(dataset), "--out", str(video)]):
        status, lines = run_cli(args, monkeypatch, capsys)
        assert status == 2 and len(lines) == 1, lines
        assert str(file) in lines[0] and "is damaged" in lines[0] and "re-create the dataset" in lines[0]
    assert _files(dataset) == before and not video.exists()


def test_check_passes_on_a_sound_store(dataset, monkeypatch, capsys):
    status, _ = run_cli(["data", "info", str(dataset), "--check"], monkeypatch, capsys)
    assert status == 0
    assert EpisodeStore.open(dataset).check() == []
