import numpy as np
import pytest

from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError


def _episode(rng, length, size=16):
    return {
        "images": rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8),
        "states": rng.normal(size=(length, 5)),
        "velocities": rng.normal(size=(length, 2)),
        "rel_actions": rng.normal(0, 20, (length, 2)),
        "abs_actions": rng.uniform(0, 512, (length, 2)),
    }


def test_round_trip_statistics_over_valid_train_steps(tmp_path):
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(tmp_path / "d", 16, {"origin": "test"})
    episodes = [_episode(rng, n) for n in (4, 7, 5)]
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
    store.append_episode(_episode(rng, 5), "train")
    store.group["images"].append(np.zeros((3, 16, 16, 3), np.uint8), axis=0)  # a writer killed mid-episode
    with pytest.raises(WmlabError, match="incomplete"):
        EpisodeStore.open(tmp_path / "d")
    resumed = EpisodeStore.resume(tmp_path / "d")
    assert resumed.group["images"].shape[0] == 5
    resumed.append_episode(_episode(rng, 2), "val")
    resumed.finalize()
    assert EpisodeStore.open(tmp_path / "d").lengths.tolist() == [5, 2]


def test_bad_input_errors(tmp_path):
    with pytest.raises(WmlabError, match="no dataset"):
        EpisodeStore.open(tmp_path / "nothing")
    store = EpisodeStore.create(tmp_path / "d", 8, {})
    with pytest.raises(WmlabError, match="already exists"):
        EpisodeStore.create(tmp_path / "d", 8, {})
    bad = _episode(np.random.default_rng(0), 3, 8)
    bad["states"] = bad["states"][:2]
    with pytest.raises(WmlabError, match="equal"):
        store.append_episode(bad, "train")
    store.append_episode(_episode(np.random.default_rng(0), 3, 8), "train")
    store.finalize()
    store.group["states"].resize((2, 5))  # damaged after completion
    with pytest.raises(WmlabError, match="inconsistent"):
        EpisodeStore.open(tmp_path / "d")
