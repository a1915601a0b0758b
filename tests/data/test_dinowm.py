import json
import pickle
import warnings

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


def test_import_reads_the_frame_size_without_a_spurious_frame_warning(tmp_path):
    _write_split(tmp_path / "src" / "train", [4, 3])
    (tmp_path / "src" / "train" / "tokens.pth").unlink()
    imageio.mimsave(  # one video longer than its episode: the only frame warning there should be
        tmp_path / "src" / "train" / "obses" / "episode_001.mp4",
        [np.zeros((32, 32, 3), np.uint8)] * 5,
        fps=10,
        macro_block_size=1,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import_dinowm(tmp_path / "src", tmp_path / "out", show_progress=False)
    messages = [str(w.message) for w in caught if "frames" in str(w.message)]
    assert len(messages) == 1 and "episode_001.mp4 has 5 frames; keeping the first 3" in messages[0], messages


@pytest.mark.parametrize(
    ("name", "shape"), [("states", (2, PAD, 4)), ("velocities", (2, PAD, 1)), ("rel_actions", (2, PAD, 3))]
)
def test_arrays_of_the_wrong_width_are_rejected_before_anything_is_written(tmp_path, name, shape):
    _write_split(tmp_path / "src" / "train", [5, 6])
    torch.save(torch.zeros(shape), tmp_path / "src" / "train" / f"{name}.pth")
    with pytest.raises(WmlabError, match=f"{name}.pth has shape"):
        import_dinowm(tmp_path / "src", tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("lengths", [b"\x00garbage", {"n": 5}, ["5", "6"], [[5], [6]], [5, -1], None])
def test_malformed_seq_lengths_name_the_file(tmp_path, lengths):
    _write_split(tmp_path / "src" / "train", [5, 6])
    file = tmp_path / "src" / "train" / "seq_lengths.pkl"
    file.write_bytes(lengths if isinstance(lengths, bytes) else pickle.dumps(lengths))
    with pytest.raises(WmlabError, match=f"{file}"):
        import_dinowm(tmp_path / "src", tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_seq_lengths_may_be_a_tensor(tmp_path):
    _write_split(tmp_path / "src" / "train", [5, 6])
    (tmp_path / "src" / "train" / "seq_lengths.pkl").write_bytes(pickle.dumps(torch.tensor([5, 6])))
    store = import_dinowm(tmp_path / "src", tmp_path / "out", show_progress=False)
    assert store.lengths.tolist() == [5, 6]
