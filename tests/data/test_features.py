import numpy as np
import pytest
import torch

from tests.data.episodes import random_store
from wmlab.data.features import FeatureCache, FeatureWindows, encode_dataset
from wmlab.errors import WmlabError


class BlockMeanEncoder:
    """A deterministic stand-in encoder: mean colour of each 4 x 4 block of a 16 px image -> 16 tokens x 3."""

    token_shape = (16, 3)

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def metadata(self):
        return {"id": "block-mean", "size": 16}

    def encode(self, images):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # the user pressed Ctrl-C
        x = torch.as_tensor(images).float().reshape(-1, 4, 4, 4, 4, 3).mean((2, 4)) / 255
        return x.reshape(-1, 16, 3)


def _store(tmp_path, lengths=(12, 17, 9, 14)):
    return random_store(tmp_path / "d", lengths, val=3)


def test_cache_windows_equal_freshly_encoded_frames(tmp_path):
    store = _store(tmp_path)
    encoder = BlockMeanEncoder()
    cache = encode_dataset(store, encoder, "block-16", batch_size=5, show_progress=False)
    windows = FeatureWindows(store, cache, "train", history=1, frameskip=5)
    assert len(windows) == (12 - 9) + (17 - 9) + (9 - 9), "starts s in [0, T - (h + 1) fs]"
    item = windows[4]
    start = int(windows.starts[4])
    fresh = encoder.encode(np.asarray(store.group["images"][[start, start + 5]])).numpy()
    np.testing.assert_allclose(item["tokens"], fresh, atol=1e-3)  # fp16 storage
    rel = np.asarray(store.group["rel_actions"][start : start + 10])
    stats = store.attrs["statistics"]
    expected = ((rel / 100 - stats["action_mean"]) / stats["action_std"]).reshape(2, 10)
    np.testing.assert_allclose(item["actions"], expected, rtol=1e-5)
    assert item["actions"][0, :2].tolist() == pytest.approx(expected[0, :2].tolist())  # row k = steps of frame k
    assert FeatureWindows(store, cache, "val").starts.tolist() == list(range(38, 38 + 14 - 9))


def test_interrupted_encoding_resumes_to_the_same_cache(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(store, BlockMeanEncoder(fail_after=3), "c", batch_size=5, show_progress=False)
    with pytest.raises(WmlabError, match="incomplete"):
        FeatureCache(store.path / "features" / "c").open(store)
    resumed = BlockMeanEncoder()
    cache = encode_dataset(store, resumed, "c", batch_size=5, show_progress=False)
    assert resumed.calls == 11 - 3, "only the missing batches are encoded"
    reference = encode_dataset(store, BlockMeanEncoder(), "ref", batch_size=7, show_progress=False)
    np.testing.assert_array_equal(cache.open(store), reference.open(store))


def test_cache_of_another_dataset_is_refused(tmp_path):
    store = _store(tmp_path)
    cache = encode_dataset(store, BlockMeanEncoder(), "c", show_progress=False)
    other = _store(tmp_path / "other", lengths=(12, 17, 9, 15))
    with pytest.raises(WmlabError, match="another version"):
        cache.open(other)


def test_windows_pool_cached_tokens_on_read(tmp_path):
    store = _store(tmp_path)
    cache = encode_dataset(store, BlockMeanEncoder(), "c", show_progress=False)
    full = FeatureWindows(store, cache, "train")[0]["tokens"]
    pooled = FeatureWindows(store, cache, "train", pool=2)[0]["tokens"]
    assert full.shape == (2, 16, 3) and pooled.shape == (2, 4, 3)
    np.testing.assert_allclose(pooled[:, 0], full[:, [0, 1, 4, 5]].mean(1), atol=1e-6)
    with pytest.raises(WmlabError, match="pool"):
        FeatureWindows(store, cache, "train", pool=3)[0]


def test_encode_store_with_a_real_vit_matches_fresh_encoding(tmp_path):
    from wmlab.data.features import encode_store
    from wmlab.encoders import make_encoder

    store = _store(tmp_path, lengths=(12, 11))
    cache = encode_store(store.path, "random-vit", size=28, batch_size=8, show_progress=False)
    assert cache.folder.name == "random-vit-28" and cache.meta["token_shape"] == [4, 384]
    windows = FeatureWindows(store, cache, "train", history=1, frameskip=2)
    start = int(windows.starts[3])
    fresh = make_encoder("random-vit", 28).encode(np.asarray(store.group["images"][[start, start + 2]]))
    np.testing.assert_allclose(windows[3]["tokens"], fresh.numpy(), atol=2e-2, rtol=1e-2)  # fp16 cache
    states = encode_store(store.path, "state", show_progress=False)
    assert states.meta["token_shape"] == [1, 5] and states.open(store).shape == (23, 1, 5)


# -- damaged cache files: one WmlabError naming the file, and nothing on disk changed ---------------------------------
def _garble_header(path):
    data = path.read_bytes()
    path.write_bytes(data[:12] + b"#" * 20 + data[32:])  # inside the header's dict literal


DAMAGE = {
    "tokens cut in half": ("tokens.npy", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
    "tokens header cut": ("tokens.npy", lambda p: p.write_bytes(p.read_bytes()[:5])),
    "tokens header garbled": ("tokens.npy", _garble_header),
    "tokens missing": ("tokens.npy", lambda p: p.unlink()),
    "meta not JSON": ("meta.json", lambda p: p.write_text('{"encoder": {"id"')),
    "meta not an object": ("meta.json", lambda p: p.write_text("[1, 2, 3]")),
    "meta missing keys": ("meta.json", lambda p: p.write_text('{"complete": true}')),
}
PROGRESS_DAMAGE = {
    "progress not JSON": ("progress.json", lambda p: p.write_bytes(b"\x00\xff{fra")),
    "progress not an object": ("progress.json", lambda p: p.write_text("[12]")),
    "progress beyond the end": ("progress.json", lambda p: p.write_text('{"frames": 1000}')),
}


def snapshot(root):
    """Every path under ``root`` with its bytes and modification time (None for folders)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def _assert_names_file_and_fix(error, path):
    message = str(error.value)
    assert str(path) in message and "damaged" in message, message
    assert f"delete the folder {path.parent}" in message and "wmlab encode" in message, message


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_complete_cache_is_refused_by_training_and_by_encode(tmp_path, damage):
    store = _store(tmp_path, lengths=(12, 9))
    cache = encode_dataset(store, BlockMeanEncoder(), "c", batch_size=5, show_progress=False)
    name, damage_file = DAMAGE[damage]
    damage_file(cache.folder / name)
    before = snapshot(store.path)
    with pytest.raises(WmlabError) as error:
        FeatureWindows(store, cache, "train")  # how training opens the cache
    _assert_names_file_and_fix(error, cache.folder / name)
    with pytest.raises(WmlabError) as error:
        encode_dataset(store, BlockMeanEncoder(), "c", batch_size=5, show_progress=False)
    _assert_names_file_and_fix(error, cache.folder / name)
    assert snapshot(store.path) == before, "a refused cache is left exactly as it was found"


@pytest.mark.parametrize("damage", {**DAMAGE, **PROGRESS_DAMAGE}, ids=list({**DAMAGE, **PROGRESS_DAMAGE}))
def test_damaged_incomplete_cache_is_refused_on_resume_and_left_untouched(tmp_path, damage):
    store = _store(tmp_path, lengths=(12, 9))
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(store, BlockMeanEncoder(fail_after=2), "c", batch_size=5, show_progress=False)
    folder = store.path / "features" / "c"
    name, damage_file = {**DAMAGE, **PROGRESS_DAMAGE}[damage]
    damage_file(folder / name)
    before = snapshot(store.path)
    resumed = BlockMeanEncoder()
    with pytest.raises(WmlabError) as error:
        encode_dataset(store, resumed, "c", batch_size=5, show_progress=False)
    _assert_names_file_and_fix(error, folder / name)
    assert resumed.calls == 0 and snapshot(store.path) == before
    with pytest.raises(WmlabError, match="incomplete|damaged"):
        FeatureCache(folder).open(store)


def test_incomplete_cache_without_progress_restarts_at_frame_zero(tmp_path):
    store = _store(tmp_path, lengths=(12, 9))
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(store, BlockMeanEncoder(fail_after=2), "c", batch_size=5, show_progress=False)
    (store.path / "features" / "c" / "progress.json").unlink()  # as a cache from before progress was written first
    resumed = BlockMeanEncoder()
    cache = encode_dataset(store, resumed, "c", batch_size=5, show_progress=False)
    assert resumed.calls == 5, "every batch is encoded again"
    reference = encode_dataset(store, BlockMeanEncoder(), "ref", batch_size=5, show_progress=False)
    np.testing.assert_array_equal(cache.open(store), reference.open(store))


def test_folder_without_meta_is_an_incomplete_cache_and_a_missing_folder_no_cache(tmp_path):
    store = _store(tmp_path, lengths=(12, 9))
    (store.path / "features" / "c").mkdir(parents=True)
    with pytest.raises(WmlabError, match="incomplete; re-run the same `wmlab encode`"):
        FeatureCache(store.path / "features" / "c").open(store)
    with pytest.raises(WmlabError, match="no feature cache"):
        FeatureCache(store.path / "features" / "d").open(store)
