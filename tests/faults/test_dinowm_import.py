"""`wmlab data import-dinowm`: killed at every write point it resumes to the uninterrupted import; a damaged source
gives one error line naming the file and writes nothing."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.test_dinowm import PAD, _write_split
from tests.faults.kill import KILLED, count_write_points, kill_at_write
from tests.faults.test_episode_store import assert_only_whole_episodes, assert_same_store, run_cli, snapshot
from wmlab.data import dinowm
from wmlab.data.dinowm import import_dinowm
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError

pytestmark = pytest.mark.filterwarnings("ignore:ignoring extra files")


@pytest.fixture
def source(tmp_path):
    """A tiny DINO-WM dataset: train episodes of 3 and 4 steps, one val episode of 2, 16 px videos."""
    _write_split(tmp_path / "src" / "train", [3, 4], size=16)
    _write_split(tmp_path / "src" / "val", [2], size=16, seed=1)
    return tmp_path / "src"


def _memoized(function):
    cache = {}

    def wrapper(*args):
        if args not in cache:
            cache[args] = function(*args)
        return cache[args]

    return wrapper


def test_import_killed_at_every_write_point_resumes_bit_identical(source, tmp_path, monkeypatch):
    # Decoded videos are cached in this process before forking, so each killed child and each re-run skips ffmpeg:
    # decoding writes nothing, and the write points are what this test is about.
    monkeypatch.setattr(dinowm, "_read_video", _memoized(dinowm._read_video))
    monkeypatch.setattr(dinowm, "_frame_size", _memoized(dinowm._frame_size))
    import_dinowm(source, tmp_path / "reference", show_progress=False)
    reference = snapshot(tmp_path / "reference")

    def importer(out: Path):
        return lambda: import_dinowm(source, out, show_progress=False)

    points = count_write_points(importer(tmp_path / "counted"), tmp_path / "count.log")
    assert points > 60
    for n in range(1, points + 1):
        out = tmp_path / f"killed-{n}"
        assert kill_at_write(importer(out), n) == KILLED, n
        assert_only_whole_episodes(out, reference)
        import_dinowm(source, out, show_progress=False)
        assert_same_store(out, reference)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x80\x04garbage, not a pickle" * 3)


def _lengths(value):
    def damage(path: Path) -> None:
        with open(path, "wb") as f:
            pickle.dump(value, f)

    return damage


def _tensor(shape):
    return lambda path: torch.save(torch.zeros(shape), path)


DAMAGES = {
    "garbage lengths": ("train/seq_lengths.pkl", _garbage, "cannot read"),
    "lengths of the wrong type": ("train/seq_lengths.pkl", _lengths({"a": 3}), "not a list of positive integer"),
    "lengths that are not integers": ("val/seq_lengths.pkl", _lengths(["2"]), "not a list of positive integer"),
    "zero length": ("train/seq_lengths.pkl", _lengths([3, 0]), "not a list of positive integer"),
    "garbage tensor": ("train/rel_actions.pth", _garbage, "cannot read"),
    "not a tensor": ("train/states.pth", lambda p: torch.save({"states": 1}, p), "not a tensor"),
    "states of width 4": ("train/states.pth", _tensor((2, PAD, 4)), r"\(2, >= 4, 5\)"),
    "velocities of width 3": ("val/velocities.pth", _tensor((1, PAD, 3)), r"\(1, >= 2, 2\)"),
    "actions of width 1": ("train/abs_actions.pth", _tensor((2, PAD, 1)), r"\(2, >= 4, 2\)"),
    "flat actions": ("val/rel_actions.pth", _tensor((1, PAD)), "has shape"),
    "garbage first video": ("train/obses/episode_000.mp4", _garbage, "cannot decode"),
    "empty video": ("val/obses/episode_000.mp4", lambda p: p.write_bytes(b""), "is empty"),
    "missing video": ("train/obses/episode_001.mp4", lambda p: p.unlink(), "lacks the videos of episodes \\[1\\]"),
}


@pytest.mark.parametrize("case", DAMAGES)
def test_a_damaged_source_gives_one_line_and_writes_nothing(case, source, tmp_path, monkeypatch, capsys):
    target, damage, message = DAMAGES[case]
    damage(source / target)
    out = tmp_path / "out"
    status, lines = run_cli(["data", "import-dinowm", str(source), "--out", str(out)], monkeypatch, capsys)
    errors = [line for line in lines if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and "Traceback" not in "\n".join(lines), lines
    named = str(source / target) if case != "missing video" else str(source / "train" / "obses")
    assert named in errors[0], errors[0]
    with pytest.raises(WmlabError, match=message):
        import_dinowm(source, out, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"], "no output folder, no staging folder"


def test_a_later_undecodable_video_stops_the_import_which_resumes_once_it_is_fixed(source, tmp_path):
    video = source / "val" / "obses" / "episode_000.mp4"
    good = video.read_bytes()
    video.write_bytes(good[: len(good) // 3])
    with pytest.raises(WmlabError, match=f"cannot decode {video}.*restore it from the original"):
        import_dinowm(source, tmp_path / "out", show_progress=False)
    with pytest.raises(WmlabError, match="re-run the same collect / import command"):
        EpisodeStore.open(tmp_path / "out")
    assert EpisodeStore._open(tmp_path / "out", writable=False).num_episodes == 2, "the train episodes are kept"
    video.write_bytes(good)
    import_dinowm(source, tmp_path / "out", show_progress=False)
    import_dinowm(source, tmp_path / "fresh", show_progress=False)
    assert_same_store(tmp_path / "out", snapshot(tmp_path / "fresh"))


def test_resuming_into_a_store_of_another_dataset_is_refused(source, tmp_path):
    rows = {"images": (16, 16, 3), "states": (5,), "velocities": (2,), "rel_actions": (2,), "abs_actions": (2,)}
    store = EpisodeStore.create(tmp_path / "out", 16, {"origin": "generated:noisy-push@1"})
    store.append_episode({name: np.zeros((2, *shape)) for name, shape in rows.items()}, "train")
    with pytest.raises(WmlabError, match="holds another dataset"):
        import_dinowm(source, tmp_path / "out", show_progress=False)


def test_the_import_command_prints_no_spurious_frame_warning(source, tmp_path, monkeypatch, capsys):
    status, lines = run_cli(["data", "import-dinowm", str(source), "--out", str(tmp_path / "out")], monkeypatch, capsys)
    assert status == 0
    assert not [line for line in lines if "keeping the first" in line], lines
