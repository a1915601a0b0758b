"""Behaviour of the online replay: contiguous uniform windows, FIFO eviction, chunked persistence and resume."""

from collections import Counter

import numpy as np
import pytest

from wmlab.data.replay import Replay, read_streams, stream_first_steps
from wmlab.errors import WmlabError


def make_step(worker: int, index: int) -> dict[str, np.ndarray]:
    """A step whose ``state`` encodes (worker, stream index)."""
    return {
        "state": np.array([worker, index], np.float32),
        "image": np.full((4, 4, 3), index % 256, np.uint8),
        "action": np.array([index * 0.5], np.float32),
        "reward": np.float32(index),
        "is_first": np.bool_(index % 7 == 0),
    }


def fill(replay: Replay, steps: int, start: int = 0) -> None:
    """Add steps [start, start + steps) to every worker, interleaved like a vector env."""
    for index in range(start, start + steps):
        for worker in range(replay.num_workers):
            replay.add(make_step(worker, index), worker)


def check_windows(sample: dict, replay: Replay) -> None:
    """Every window is a stored, contiguous slice of one worker's stream."""
    worker, index = sample["state"][..., 0], sample["state"][..., 1]
    assert (worker == worker[:, :1]).all()
    assert (index == index[:, :1] + np.arange(replay.length)).all()
    total = np.array(replay.steps_per_worker)[worker[:, 0].astype(int)]
    assert (index[:, 0] >= total - replay.worker_capacity).all() and (index[:, -1] < total).all()
    assert (sample["reward"] == index).all() and (sample["image"][..., 0, 0, 0] == index % 256).all()


def test_windows_are_contiguous_slices_of_one_worker_across_the_wrap():
    replay = Replay(capacity=60, length=5, num_workers=3)
    fill(replay, 37)  # 37 > 20 steps per worker: the ring buffer has wrapped
    sample = replay.sample(500, np.random.default_rng(0))
    assert sample["state"].shape == (500, 5, 2) and sample["image"].shape == (500, 5, 4, 4, 3)
    assert sample["reward"].shape == (500, 5) and sample["is_first"].dtype == np.bool_
    check_windows(sample, replay)


def test_every_valid_window_is_sampled_uniformly():
    replay = Replay(capacity=32, length=5, num_workers=2)
    for index in range(30):
        replay.add(make_step(0, index), 0)  # 16 stored -> 12 windows, starts 14..25
    for index in range(8):
        replay.add(make_step(1, index), 1)  # 8 stored -> 4 windows, starts 0..3
    assert replay.num_windows == 16
    sample = replay.sample(16000, np.random.default_rng(1))
    check_windows(sample, replay)
    counts = Counter(zip(sample["state"][:, 0, 0].astype(int), sample["state"][:, 0, 1].astype(int)))
    assert set(counts) == {(0, s) for s in range(14, 26)} | {(1, s) for s in range(4)}
    assert all(800 < c < 1200 for c in counts.values())  # expected 1000 each


def test_fifo_eviction_keeps_the_newest_steps_of_each_worker():
    replay = Replay(capacity=30, length=1, num_workers=3)  # 10 steps per worker
    fill(replay, 25)
    assert len(replay) == 30 and replay.num_windows == 30 and replay.steps_per_worker == [25, 25, 25]
    state = replay.sample(3000, np.random.default_rng(2))["state"][:, 0]
    assert {tuple(s) for s in state.astype(int)} == {(w, i) for w in range(3) for i in range(15, 25)}


def test_add_batch_equals_adding_per_worker():
    single, batched = Replay(40, 4, 2), Replay(40, 4, 2)
    fill(single, 27)
    for index in range(27):
        steps = [make_step(w, index) for w in range(2)]
        batched.add_batch({key: np.stack([s[key] for s in steps]) for key in steps[0]})
    assert batched.steps_per_worker == single.steps_per_worker and len(batched) == len(single)
    a, b = single.sample(64, np.random.default_rng(3)), batched.sample(64, np.random.default_rng(3))
    assert all(np.array_equal(a[key], b[key]) for key in a)


def test_same_seed_gives_the_same_sample():
    replay = Replay(100, 8, 4)
    fill(replay, 30)
    a, b = replay.sample(32, np.random.default_rng(7)), replay.sample(32, np.random.default_rng(7))
    assert all(np.array_equal(a[key], b[key]) for key in a)
    assert not np.array_equal(a["state"], replay.sample(32, np.random.default_rng(8))["state"])


def test_sampling_without_a_full_window_raises():
    replay = Replay(100, 8, 2)
    with pytest.raises(WmlabError, match="no full window"):
        replay.sample(4, np.random.default_rng(0))
    fill(replay, 7)
    with pytest.raises(WmlabError, match="no full window"):
        replay.sample(4, np.random.default_rng(0))


def test_key_shape_and_dtype_mismatches_raise_naming_the_key():
    replay = Replay(100, 8, 2)
    replay.add(make_step(0, 0), 0)
    step = make_step(0, 1)
    with pytest.raises(WmlabError, match="reward"):
        replay.add({k: v for k, v in step.items() if k != "reward"}, 0)
    with pytest.raises(WmlabError, match="image"):
        replay.add({**step, "image": np.zeros((5, 4, 3), np.uint8)}, 0)
    with pytest.raises(WmlabError, match="image"):
        replay.add({**step, "image": np.zeros((4, 4, 3), np.float32)}, 0)
    with pytest.raises(WmlabError, match="state"):
        replay.add_batch({k: np.stack([v] * 3) for k, v in step.items()})
    with pytest.raises(WmlabError, match="worker"):
        replay.add(step, 2)
    replay.add({**step, "reward": 1.0}, 1)  # a float64 scalar is cast to the stored float32


def test_save_and_load_reproduce_identical_samples(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 23)
    replay.save()
    loaded = Replay.load(tmp_path, capacity=20, length=3, num_workers=2, chunk_size=4)
    assert loaded.steps_per_worker == [23, 23] and len(loaded) == len(replay) == 20
    a, b = replay.sample(50, np.random.default_rng(4)), loaded.sample(50, np.random.default_rng(4))
    assert all(np.array_equal(a[key], b[key]) for key in a) and b["is_first"].dtype == np.bool_
    fill(replay, 9, start=23)  # both continue identically, chunk files included
    fill(loaded, 9, start=23)
    a, b = replay.sample(50, np.random.default_rng(5)), loaded.sample(50, np.random.default_rng(5))
    assert all(np.array_equal(a[key], b[key]) for key in a)


def test_load_with_steps_per_worker_resumes_the_checkpoint(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 17)
    replay.save()
    checkpoint = replay.steps_per_worker
    fill(replay, 13, start=17)  # after the checkpoint: evicts steps the checkpoint still holds
    reference = Replay(capacity=20, length=3, num_workers=2)
    fill(reference, 17)
    loaded = Replay.load(tmp_path, 20, 3, 2, chunk_size=4, steps_per_worker=checkpoint)
    assert loaded.steps_per_worker == [17, 17] and len(loaded) == 20
    a, b = reference.sample(100, np.random.default_rng(6)), loaded.sample(100, np.random.default_rng(6))
    assert all(np.array_equal(a[key], b[key]) for key in a)
    # the files of steps after the checkpoint are gone: loading again without counts gives the same buffer
    again = Replay.load(tmp_path, 20, 3, 2, chunk_size=4)
    assert again.steps_per_worker == [17, 17]


def test_eviction_deletes_old_chunk_files(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 100)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"w{w:02d}-{first:012d}.npz" for w in range(2) for first in (88, 92, 96)]
    stored = sum(len(np.load(tmp_path / name)["reward"]) for name in names)
    assert stored <= 2 * (10 + 4)


def test_read_streams_gives_each_workers_steps_on_disk_in_order_and_changes_nothing(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 30)
    replay.save()  # the unfinished chunk (steps 28, 29) is on disk too
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    streams = read_streams(tmp_path)
    assert len(streams) == 2
    for worker, stream in enumerate(streams):
        assert (stream["state"][:, 0] == worker).all()
        index = stream["state"][:, 1]
        assert (index == np.arange(index[0], 30)).all() and index[0] <= 30 - 10  # at least the in-memory steps
        assert stream["is_first"].dtype == np.bool_ and (stream["reward"] == index).all()
    firsts = stream_first_steps(tmp_path)  # the FIFO dropped the oldest steps: streams do not start at step 0
    assert firsts == [int(stream["state"][0, 1]) for stream in streams] and min(firsts) > 0
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before
    (tmp_path / "w00-000000000024.npz").unlink()  # a missing middle chunk is a gap, not silently joined data
    with pytest.raises(WmlabError, match="gap"):
        read_streams(tmp_path)


def test_load_of_an_empty_or_missing_folder_gives_an_empty_replay(tmp_path):
    for folder in (tmp_path, tmp_path / "missing"):
        replay = Replay.load(folder, 20, 3, 2, chunk_size=4)
        assert len(replay) == 0 and replay.steps_per_worker == [0, 0]
        fill(replay, 5)
        assert replay.num_windows == 6


def test_a_damaged_chunk_the_checkpoint_needs_raises(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 10)
    replay.save()
    (tmp_path / "w01-000000000004.npz").write_bytes(b"torn")
    with pytest.raises(WmlabError, match="w01-000000000004.npz.*delete"):
        Replay.load(tmp_path, 20, 3, 2, chunk_size=4, steps_per_worker=replay.steps_per_worker)


def test_a_damaged_chunk_after_the_checkpoint_warns_and_is_skipped(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 8)
    replay.save()
    checkpoint = replay.steps_per_worker
    fill(replay, 4, start=8)
    (tmp_path / "w00-000000000008.npz").write_bytes(b"torn")
    with pytest.warns(UserWarning, match="w00-000000000008.npz"):
        loaded = Replay.load(tmp_path, 20, 3, 2, chunk_size=4, steps_per_worker=checkpoint)
    assert loaded.steps_per_worker == [8, 8]


def test_missing_checkpoint_steps_and_folder_reuse_raise(tmp_path):
    replay = Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
    fill(replay, 6)  # no save(): only steps 0..3 reach the disk
    with pytest.raises(WmlabError, match="lacks step 4"):
        Replay.load(tmp_path, 20, 3, 2, chunk_size=4, steps_per_worker=[6, 6])
    with pytest.raises(WmlabError, match="Replay.load"):
        Replay(capacity=20, length=3, num_workers=2, directory=tmp_path, chunk_size=4)
