"""The action decoder (spec §7): architecture, pair cache, training with early stopping, stored flags, planning use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.latent.conftest import SMALL
from wmlab.config import build_config
from wmlab.data.features import FeatureCache, FeatureWindows, encode_store
from wmlab.data.trajectories import EpisodeStore
from wmlab.errors import WmlabError
from wmlab.latent import decoder_pairs
from wmlab.latent.decoder import (
    ActionDecoder,
    DecoderConfig,
    decode_plan,
    denormalise_macro,
    load_decoder,
    pair_rmse,
    train_decoder,
)
from wmlab.latent.decoder_pairs import build_pairs, load_pairs
from wmlab.latent.train import LatentConfig, open_windows, train_latent
from wmlab.latent.world_model import IDMConfig, LatentModelConfig, LatentWorldModel, PredictorConfig

TINY = {"dec_dim": 16, "hidden": 32, "batch_size": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    """Episodes with one constant relative action each, so the macro action is a function of (v_t, v_{t+5})."""
    path = tmp_path_factory.mktemp("steady") / "d"
    rng = np.random.default_rng(1)
    store = EpisodeStore.create(path, 8, {})
    for i in range(160):
        n = 14
        rel = np.repeat(rng.normal(0, 20, (1, 2)), n, 0)
        states = np.zeros((n, 5))
        states[0] = rng.uniform(100, 400, 5)
        for k in range(1, n):
            states[k] = states[k - 1]
            states[k, :2] += rel[k - 1]
            states[k, 2:4] += 0.5 * rel[k - 1]
        episode = {"images": np.zeros((n, 8, 8, 3), np.uint8), "states": states, "velocities": np.zeros((n, 2))}
        episode.update(rel_actions=rel, abs_actions=states[:, :2] + rel)
        store.append_episode(episode, "val" if i >= 140 else "train")
    store.finalize()
    encode_store(path, "state", show_progress=False)
    return path


@pytest.fixture(scope="module")
def run(steady, tmp_path_factory):
    """A tiny trained `la` run on the steady data: its latent action z carries the displacement, hence the action."""
    overrides = [f"data.path={steady}", "data.features=state", "model.variant=la", "train.max_steps=200"]
    overrides += ["train.lr_idm=3e-3", "train.lr_predictor=3e-3"]  # the latent comes to encode the displacement
    cfg = build_config(LatentConfig, "latent", "state", overrides=SMALL + overrides)
    path = tmp_path_factory.mktemp("la") / "run"
    train_latent(cfg, path, show_progress=False)
    return path


@pytest.fixture(scope="module")
def trained(run):
    cfg = DecoderConfig(train_pairs=2000, val_pairs=2000, max_epochs=60, patience=8, lr=3e-3, **TINY)
    return train_decoder(run, cfg, show_progress=False)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_of_the_reference_decoder():
    assert _count(ActionDecoder(384, 32, 10)) == 406_506
    for flags in ({"use_e": False}, {"use_z": False}, {"use_delta": True}):  # every parameter always exists
        assert _count(ActionDecoder(384, 32, 10, **flags)) == 406_506


def test_flags_off_use_learned_constants():
    tokens, z = torch.randn(4, 3, 8), torch.randn(4, 6)
    no_e = ActionDecoder(8, 6, 10, use_e=False, dec_dim=16, hidden=32)
    torch.testing.assert_close(no_e(tokens, z), no_e(torch.randn(4, 3, 8), z))
    assert not torch.allclose(no_e(tokens, z), no_e(tokens, torch.randn(4, 6)))
    no_z = ActionDecoder(8, 6, 10, use_z=False, dec_dim=16, hidden=32)
    torch.testing.assert_close(no_z(tokens, z), no_z(tokens, torch.randn(4, 6)))
    assert not torch.allclose(no_z(tokens, z), no_z(torch.randn(4, 3, 8), z))
    with torch.no_grad():  # the constant is learned: it feeds the head
        before = no_z(tokens, z)
        no_z.z_const.add_(1.0)
        assert not torch.allclose(before, no_z(tokens, z))
    # the same seed gives the same weights
    a, b = ActionDecoder(8, 6, 10, seed=3), ActionDecoder(8, 6, 10, seed=3)
    torch.testing.assert_close(a(tokens, z), b(tokens, z))


def test_delta_needs_predicted_tokens():
    decoder = ActionDecoder(8, 6, 10, use_delta=True, dec_dim=16, hidden=32)
    with pytest.raises(WmlabError, match="pred_tokens"):
        decoder(torch.randn(2, 3, 8), torch.randn(2, 6))
    tokens = torch.randn(2, 3, 8)
    assert not torch.allclose(decoder(tokens, torch.zeros(2, 6), tokens), decoder(tokens, torch.zeros(2, 6), -tokens))


def test_decode_plan_equals_step_by_step_calls():
    decoder = ActionDecoder(8, 6, 10, use_delta=True, dec_dim=16, hidden=32).eval()
    tokens, latents = torch.randn(3, 5, 4, 8), torch.randn(3, 4, 6)
    plan = decode_plan(decoder, tokens, latents)
    assert plan.shape == (3, 4, 10)
    for t in range(4):
        torch.testing.assert_close(plan[:, t], decoder(tokens[:, t], latents[:, t], tokens[:, t + 1]))


def test_denormalise_round_trips_a_window_to_the_raw_pixels(dataset):
    store = EpisodeStore.open(dataset)
    windows = FeatureWindows(store, FeatureCache(dataset / "features" / "state"), "train", history=1, frameskip=5)
    raw = np.asarray(store.group["rel_actions"][:])
    for index in (0, 7, len(windows) - 1):
        start = int(windows.starts[index])
        macro = windows[index]["actions"]  # (2, 10): both rows of the window
        px = denormalise_macro(macro, windows.action_mean, windows.action_std)
        np.testing.assert_allclose(px, raw[start : start + 10], atol=1e-3)
        as_tensor = denormalise_macro(torch.from_numpy(macro)[None], windows.action_mean, windows.action_std)
        assert as_tensor.shape == (1, 10, 2)
        np.testing.assert_allclose(as_tensor[0].numpy(), raw[start : start + 10], atol=1e-3)


def test_the_action_variant_has_no_decoder(dataset):
    cfg = LatentModelConfig(
        variant="action",
        action_dim=4,
        predictor=PredictorConfig(depth=1, heads=1, head_dim=8, mlp_dim=16),
        idm=IDMConfig(dim=8, depth=1, heads=1, head_dim=8, mlp_dim=16),
    )
    with pytest.raises(WmlabError, match="plans real actions directly"):
        build_pairs(LatentWorldModel(cfg, 1, 5), [], 10, 0, "cpu", include_pred=False)


def test_pairs_are_the_seeded_windows(run):
    from wmlab.latent.run import load_latent

    model, cfg, _ = load_latent(run)
    windows = open_windows(cfg, "val")
    pairs = build_pairs(model, windows, 30, seed=5, device="cpu", include_pred=True, batch_size=7, show_progress=False)
    assert pairs["tokens"].dtype == np.float16 and pairs["pred"].shape == pairs["tokens"].shape == (30, 1, 5)
    order = np.random.default_rng(5).permutation(len(windows))[:30]
    with torch.no_grad():
        for row in (0, 13, 29):
            item = windows[int(order[row])]
            tokens, actions = torch.from_numpy(item["tokens"])[None], torch.from_numpy(item["actions"])[None]
            z = model.conditioning(tokens, actions)[0][:, 0]
            np.testing.assert_allclose(pairs["z"][row], z[0].numpy(), atol=1e-5)
            np.testing.assert_array_equal(pairs["y"][row], item["actions"][0])
            predicted = model.predict(tokens[:, :1], z[:, None])[0, 0]
            np.testing.assert_allclose(pairs["pred"][row].astype(np.float32), predicted.numpy(), atol=1e-2)
    small = build_pairs(model, windows, 10, seed=5, device="cpu", include_pred=False, show_progress=False)
    np.testing.assert_array_equal(small["z"], pairs["z"][:10])  # a shorter shuffle is a prefix of a longer one
    assert "pred" not in small


def test_training_beats_the_constant_predictor_and_is_stored(run, trained):
    assert trained["val_rmse"] < 0.6 * trained["constant_rmse"], trained
    decoder, meta = load_decoder(run)
    assert not decoder.training and decoder.flags == {"use_e": True, "use_z": True, "use_delta": False}
    assert meta["token_dim"] == 5 and meta["z_dim"] == 8 and meta["out_dim"] == 10 and meta["frameskip"] == 5
    assert meta["train_pairs"] == trained["train_pairs"] and len(meta["history"]) == trained["epochs"]
    pairs, pair_meta = load_pairs(run, "val")
    assert (
        meta["statistics"] == json.loads((run / "decoder" / "pairs" / "train" / "meta.json").read_text())["statistics"]
    )
    assert pair_rmse(decoder, pairs) == pytest.approx(meta["val_rmse"], rel=1e-5)
    assert pair_meta["fingerprint"] == meta["fingerprint"] and pair_meta["count"] == len(pairs["y"])
    # the current state alone says nothing about the (random, per-episode) action: without z the decoder fails
    blind = DecoderConfig(train_pairs=2000, val_pairs=2000, max_epochs=60, patience=8, lr=3e-3, use_z=False, **TINY)
    assert train_decoder(run, blind, show_progress=False)["rmse_ratio"] > trained["rmse_ratio"] + 0.3


def test_early_stopping_restores_the_best_epoch(run, trained):
    # min_delta so large that nothing after epoch 1 counts as an improvement: stop at 1 + patience, restore epoch 1
    cfg = DecoderConfig(train_pairs=300, val_pairs=200, max_epochs=50, patience=3, min_delta=100.0, lr=1e-2, **TINY)
    summary = train_decoder(run, cfg, show_progress=False)
    decoder, meta = load_decoder(run)
    history = [h["val_rmse"] for h in meta["history"]]
    assert summary["best_epoch"] == 1 and summary["epochs"] == 4 and len(history) == 4
    assert history[-1] != pytest.approx(history[0])
    pairs, _ = load_pairs(run, "val")
    assert pair_rmse(decoder, {k: v[:200] for k, v in pairs.items()}) == pytest.approx(history[0], rel=1e-5)
    again = train_decoder(run, cfg, show_progress=False)
    assert again["val_rmse"] == summary["val_rmse"]  # seeded and deterministic


def test_load_decoder_refuses_mismatches(run, trained, tmp_path):
    _, meta = load_decoder(run, expect={"use_e": True, "use_z": True, "use_delta": None}, fingerprint=None)
    with pytest.raises(WmlabError, match=r"use_delta=False.*use_delta=True"):
        load_decoder(run, expect={"use_delta": True})
    with pytest.raises(WmlabError, match="different world-model checkpoint"):
        load_decoder(run / "decoder" / "decoder.pt", fingerprint="0:" + "0" * 64)
    load_decoder(run, fingerprint=meta["fingerprint"])
    with pytest.raises(WmlabError, match="wmlab train decoder"):
        load_decoder(tmp_path)


def test_pair_cache_is_reused_unless_rebuilt_and_written_atomically(run, trained, monkeypatch):
    folder = run / "decoder" / "pairs" / "train"
    cfg = DecoderConfig(train_pairs=100, val_pairs=50, max_epochs=1, **TINY)
    stamp = (folder / "meta.json").stat().st_mtime_ns
    train_decoder(run, cfg, show_progress=False)
    assert (folder / "meta.json").stat().st_mtime_ns == stamp  # a larger cache with the same fingerprint is reused

    def failing(model, windows, count, seed, device, include_pred, show_progress=True, out=None, **kwargs):
        out["tokens"][:] = 1.0
        raise KeyboardInterrupt

    monkeypatch.setattr(decoder_pairs, "build_pairs", failing)
    with pytest.raises(KeyboardInterrupt):
        train_decoder(run, cfg, rebuild=True, show_progress=False)
    assert (folder / "meta.json").stat().st_mtime_ns == stamp  # the old cache is intact
    assert sorted(p.name for p in folder.parent.iterdir()) == ["train", "val"]  # no temporary folder left
    monkeypatch.undo()
    train_decoder(run, cfg, rebuild=True, show_progress=False)
    assert json.loads((folder / "meta.json").read_text())["count"] == 100  # rebuilt at the requested size
    assert (folder / "meta.json").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in folder.parent.iterdir()) == ["train", "val"]  # the replaced cache is gone
