import numpy as np
import pytest

from tests.data.episodes import random_episode
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError


def test_round_trip_statistics_over_valid_train_steps(tmp_path):
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(tmp_path / "d", 16, {"origin": "test"})
    episodes = [random_episode(rng, n) for n in (4, 7, 5)]
    for episode, split in zip(episodes, ("train", "val", "train")):
        store.append_episode(episode, split)
    store.finalize()
    opened = EpisodeStore.open(tmp_path / "d")
    assert opened.num_episodes == 3 and opened.lengths.tolist() == [4, 7, 5]
    assert opened.splits.tolist() == ["train", "val", "train"]
    np.testing.assert_array_equal(opened.episode(1)["images"], episodes[1]["images"])
    np.testing.assert_allclose(opened.episode(2)["states"], episodes[2]["states"], rtol=1e-6)
    train_actions = np.concatenate([episodes[0]["rel_actions"], episodes[2]["rel_actions"]]) / 100
    stats = opened.attrs["statistics"]
    np.testing.assert_allclose(stats["action_mean"], train_actions.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action_std"], train_actions.std(0), rtol=1e-5)
    assert stats["train_steps"] == 9


def test_incomplete_store_is_refused_and_resume_cuts_a_torn_episode(tmp_path):
    rng = np.random.default_rng(1)
    store = EpisodeStore.create(tmp_path / "d", 16, {})
    store.append_episode(random_episode(rng, 5), "train")
    store.group["images"].append(np.zeros((3, 16, 16, 3), np.uint8), axis=0)  # a writer killed mid-episode
    with pytest.raises(WmlabError, match="incomplete"):
        EpisodeStore.open(tmp_path / "d")
    resumed = EpisodeStore.resume(tmp_path / "d")
    assert resumed.group["images"].shape[0] == 5
    resumed.append_episode(random_episode(rng, 2), "val")
    resumed.finalize()
    assert EpisodeStore.open(tmp_path / "d").lengths.tolist() == [5, 2]


def test_bad_input_errors(tmp_path):
    with pytest.raises(WmlabError, match="no dataset"):
        EpisodeStore.open(tmp_path / "nothing")
    store = EpisodeStore.create(tmp_path / "d", 8, {})
    with pytest.raises(WmlabError, match="already exists"):
        EpisodeStore.create(tmp_path / "d", 8, {})
    bad = random_episode(np.random.default_rng(0), 3, 8)
    bad["states"] = bad["states"][:2]
    with pytest.raises(WmlabError, match="equal"):
        store.append_episode(bad, "train")
    store.append_episode(random_episode(np.random.default_rng(0), 3, 8), "train")
    store.finalize()
    store.group["states"].resize((2, 5))  # damaged after completion
    with pytest.raises(WmlabError, match="inconsistent"):
        EpisodeStore.open(tmp_path / "d")


def test_rows_past_the_commit_record_are_invisible_and_resume_trims_every_array(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "d"
    store = EpisodeStore.create(path, 16, {})
    store.append_episode(random_episode(rng, 4), "train", extra={"steps": 4})
    store.append_episode(random_episode(rng, 3), "val", extra={"steps": 7})
    # a writer killed just before committing a third episode: every array, split and episode_ends hold it
    torn = random_episode(rng, 5)
    for name in ("images", "states", "velocities", "rel_actions", "abs_actions"):
        store._write(name, 7, np.asarray(torn[name], store.group[name].dtype))
    store._write("split", 2, np.array([1], np.int8))
    store._write("episode_ends", 2, np.array([12], np.int64))
    leftovers = [path / "zarr.0123456789abcdef0123456789abcdef.partial", path / "images" / "c" / "0" / "0" / "0" / "0"]
    leftovers[0].write_bytes(b"{")
    leftovers[1] = leftovers[1].with_name("0.fedcba9876543210fedcba9876543210.partial")
    leftovers[1].write_bytes(b"torn")
    view = EpisodeStore._open(path, writable=False)
    assert view.num_episodes == 2 and view.splits.tolist() == ["train", "val"] and view.episode_ends.tolist() == [4, 7]
    assert view.read("images").shape[0] == 7 and view.committed["extra"] == {"steps": 7}
    resumed = EpisodeStore.resume(path)
    shapes = {name: resumed.group[name].shape[0] for name in ("images", "states", "split", "episode_ends")}
    assert shapes == {"images": 7, "states": 7, "split": 2, "episode_ends": 2}
    assert not any(p.exists() for p in leftovers)
    resumed.append_episode(random_episode(rng, 2), "train")
    resumed.finalize()
    opened = EpisodeStore.open(path)
    assert opened.splits.tolist() == ["train", "val", "train"] and opened.lengths.tolist() == [4, 3, 2]
    assert opened.attrs["committed"] == {"episodes": 3, "rows": 9, "extra": {"steps": 7}}, "None keeps the totals"


def test_create_is_all_or_nothing(tmp_path):
    staging = tmp_path / ".d.creating"  # what a writer killed inside create leaves
    (staging / "images").mkdir(parents=True)
    (tmp_path / "d").mkdir()  # an empty folder is fine to write into
    store = EpisodeStore.create(tmp_path / "d", 8, {"origin": "test"})
    assert not staging.exists() and store.num_episodes == 0
    assert store.attrs["committed"] == {"episodes": 0, "rows": 0, "extra": {}} and store.attrs["origin"] == "test"
    with pytest.raises(WmlabError, match="rows"):
        store.append_episode(random_episode(np.random.default_rng(0), 3, 16), "train")  # 16 px frames, 8 px store


def test_a_store_written_before_the_commit_record_still_opens(tmp_path):
    rng = np.random.default_rng(3)
    store = EpisodeStore.create(tmp_path / "d", 16, {})
    for length, split in ((3, "train"), (6, "val")):
        store.append_episode(random_episode(rng, length), split)
    store.finalize()
    del store.group.attrs["committed"]
    opened = EpisodeStore.open(tmp_path / "d")
    assert opened.num_episodes == 2 and opened.lengths.tolist() == [3, 6] and opened.check() == []
    assert opened.episode(1)["images"].shape == (6, 16, 16, 3)
