import json
import pickle

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from wmlab.data.dinowm import import_dinowm, subset_dinowm
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError

PAD = 12


def _write_split(folder, lengths, size=32, digits=3, seed=0):
    """A DINO-WM split in the exact on-disk format: zero-padded .pth tensors, pickled lengths, mp4 videos."""
    rng = np.random.default_rng(seed)
    (folder / "obses").mkdir(parents=True)
    arrays = {}
    for name, dim in (("states", 5), ("velocities", 2), ("rel_actions", 2), ("abs_actions", 2)):
        data = np.zeros((len(lengths), PAD, dim), np.float32)
        for i, length in enumerate(lengths):
            data[i, :length] = rng.normal(size=(length, dim))
        torch.save(torch.as_tensor(data), folder / f"{name}.pth")
        arrays[name] = data
    with open(folder / "seq_lengths.pkl", "wb") as f:
        pickle.dump(lengths, f)
    torch.save(torch.zeros(3), folder / "tokens.pth")  # extra files are ignored with a notice
    for i, length in enumerate(lengths):
        shade = np.full(
            (length, size, size, 3), (40 + 20 * i) % 256, np.uint8
        )  # flat frames survive H.264 nearly exactly
        imageio.mimsave(folder / "obses" / f"episode_{i:0{digits}d}.mp4", list(shade), fps=10, macro_block_size=1)
    return arrays


def test_import_unpads_keeps_splits_and_reads_frame_size(tmp_path):
    train = _write_split(tmp_path / "src" / "train", [5, 9, 12], digits=4)
    _write_split(tmp_path / "src" / "val", [7], seed=1)
    with pytest.warns(UserWarning, match="tokens.pth"):
        store = import_dinowm(tmp_path / "src", tmp_path / "out", show_progress=False)
    store = EpisodeStore.open(tmp_path / "out")
    assert store.lengths.tolist() == [5, 9, 12, 7] and store.splits.tolist() == ["train"] * 3 + ["val"]
    assert store.image_size == 32
    np.testing.assert_allclose(store.episode(1)["states"], train["states"][1, :9], rtol=1e-6)
    frames = store.episode(2)["images"]
    assert frames.shape == (12, 32, 32, 3) and abs(frames.astype(int).mean() - 80) < 3
    assert store.attrs["origin"].startswith("imported:dinowm")


def test_import_rejects_short_videos_and_mismatched_arrays(tmp_path):
    _write_split(tmp_path / "src" / "train", [5, 6])
    imageio.mimsave(
        tmp_path / "src" / "train" / "obses" / "episode_001.mp4",
        [np.zeros((32, 32, 3), np.uint8)] * 3,
        fps=10,
        macro_block_size=1,
    )
    with pytest.raises(WmlabError, match="has 3 frames"):
        import_dinowm(tmp_path / "src", tmp_path / "out", show_progress=False)
    _write_split(tmp_path / "src2" / "train", [5, 6])
    torch.save(torch.zeros(3, PAD, 5), tmp_path / "src2" / "train" / "states.pth")
    with pytest.raises(WmlabError, match="states.pth"):
        import_dinowm(tmp_path / "src2", tmp_path / "out2", show_progress=False)


def test_subset_recipe(tmp_path):
    lengths = [5 + i % 7 for i in range(30)]
    _write_split(tmp_path / "src" / "train", lengths, size=16)
    info = subset_dinowm(tmp_path / "src", tmp_path / "sub", n_total=10, seed=0)
    rng = np.random.default_rng(10)
    sampled = rng.choice(30, size=10, replace=False)
    perm = rng.permutation(10)
    assert info["train_indices"] == sorted(sampled[perm[:9]].tolist())
    assert info["val_indices"] == sorted(sampled[perm[9:]].tolist())
    with open(tmp_path / "sub" / "train" / "seq_lengths.pkl", "rb") as f:
        assert pickle.load(f) == [lengths[i] for i in info["train_indices"]]
    assert sorted(p.name for p in (tmp_path / "sub" / "val" / "obses").iterdir()) == ["episode_000.mp4"]
    assert json.loads((tmp_path / "sub" / "subset_info.json").read_text())["rng"] == "default_rng(10)"
