import numpy as np
import pytest

from wmlab.data import collect as collect_module
from wmlab.data.collect import CollectConfig, collect_pusht, generate_episode, split_of
from wmlab.data.trajectories import EpisodeStore
from wmlab.envs.pusht_geometry import agent_block_distance
from wmlab.errors import WmlabError

SMALL = CollectConfig(episodes=6, seed=3, image_size=32, min_length=40, max_length=60)


def test_the_scripted_policy_touches_and_moves_the_block():
    results = [generate_episode(CollectConfig(episodes=12, seed=0, image_size=32), i) for i in range(12)]
    steps = sum(len(r["episode"]["images"]) for r in results)
    assert sum(r["contacts"] for r in results) / steps >= 0.25, "contact-rich"
    assert np.mean([r["moved"] for r in results]) >= 0.9, "the block moves in most episodes"
    rel = np.concatenate([r["episode"]["rel_actions"] for r in results])
    distance = np.concatenate([agent_block_distance(r["episode"]["states"]) for r in results])
    assert (distance < 10).mean() < 0.02, "the policy backs off instead of cutting into a stuck block"
    assert 12 <= rel.std(0).min() and rel.std(0).max() <= 24, "per-axis step std near the original's"
    for r in results:
        ep = r["episode"]
        targets = ep["states"][:, :2] + ep["rel_actions"]
        np.testing.assert_allclose(targets, ep["abs_actions"], atol=1e-9)
        assert targets.min() >= 15 and targets.max() <= 497, "PD targets stay in the arena"
        assert 50 <= len(ep["images"]) <= 250


def test_episodes_depend_on_seed_and_index_only():
    a, b = generate_episode(SMALL, 4), generate_episode(SMALL, 4)
    np.testing.assert_array_equal(a["episode"]["images"], b["episode"]["images"])
    c = generate_episode(SMALL, 5)
    assert len(c["episode"]["states"]) != len(a["episode"]["states"]) or not np.array_equal(
        c["episode"]["states"], a["episode"]["states"]
    )


def test_split_is_a_seeded_ninety_ten_permutation():
    splits = split_of(CollectConfig(episodes=50, seed=1))
    assert (splits == "val").sum() == 5
    assert list(splits) == list(split_of(CollectConfig(episodes=50, seed=1)))
    assert list(splits) != list(split_of(CollectConfig(episodes=50, seed=2)))


def test_interrupted_collection_resumes_to_the_same_dataset(tmp_path, monkeypatch):
    real = collect_module.generate_episode
    calls = {"n": 0}

    def flaky(config, index):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(config, index)

    monkeypatch.setattr(collect_module, "generate_episode", flaky)
    with pytest.raises(KeyboardInterrupt):
        collect_pusht(SMALL, tmp_path / "a", show_progress=False)
    with pytest.raises(WmlabError, match="incomplete"):
        EpisodeStore.open(tmp_path / "a")
    done = [real(SMALL, i) for i in range(3)]  # the running totals are committed with each episode
    expected = {"contacts": sum(r["contacts"] for r in done), "moved": sum(int(r["moved"]) for r in done)}
    assert EpisodeStore._open(tmp_path / "a", writable=False).committed["extra"] == expected
    monkeypatch.setattr(collect_module, "generate_episode", real)
    with pytest.raises(WmlabError, match="same options"):
        collect_pusht(CollectConfig(episodes=6, seed=4, image_size=32), tmp_path / "a", show_progress=False)
    resumed = collect_pusht(SMALL, tmp_path / "a", show_progress=False)
    fresh = collect_pusht(SMALL, tmp_path / "b", workers=2, show_progress=False)
    assert resumed.lengths.tolist() == fresh.lengths.tolist()
    assert resumed.splits.tolist() == fresh.splits.tolist()
    np.testing.assert_array_equal(resumed.group["images"][:], fresh.group["images"][:])
    attrs = EpisodeStore.open(tmp_path / "a").attrs
    assert attrs["complete"] and attrs["origin"].startswith("generated:")
    assert attrs["contact_fraction"] == pytest.approx(fresh.attrs["contact_fraction"])
