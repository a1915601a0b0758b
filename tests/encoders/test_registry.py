"""`make_encoder`: ids, the common interface, and the errors of a wrong call."""

import numpy as np
import pytest

from wmlab.encoders import Encoder, make_encoder
from wmlab.errors import WmlabError


def test_state_encoder_through_the_registry():
    encoder = make_encoder("state", mean=np.zeros(5), std=np.ones(5), angle="sincos")
    assert isinstance(encoder, Encoder) and encoder.input_kind == "state" and encoder.token_shape == (1, 6)
    assert encoder.encode(np.zeros((4, 5))).shape == (4, 1, 6)


def test_state_encoder_needs_statistics():
    with pytest.raises(WmlabError, match="valid-step state statistics"):
        make_encoder("state")


def test_random_vit_through_the_registry():
    encoder = make_encoder("random-vit", 98, seed=1)
    assert isinstance(encoder, Encoder) and encoder.input_kind == "image" and encoder.token_shape == (49, 384)
    assert encoder.encode(np.zeros((1, 98, 98, 3), dtype=np.uint8)).shape == (1, 49, 384)


def test_unknown_encoder_suggests_the_nearest():
    with pytest.raises(WmlabError, match="did you mean 'dinov2-s14'"):
        make_encoder("dinov2-s16")


def test_planning_rebuilds_the_cached_encoder_from_its_metadata_and_refuses_a_different_one():
    from wmlab.encoders.registry import encoder_from_metadata

    state = make_encoder("state", mean=np.arange(5.0), std=np.ones(5), angle="sincos")
    rebuilt = encoder_from_metadata(state.metadata())
    x = np.random.default_rng(0).normal(size=(3, 5))
    np.testing.assert_array_equal(rebuilt.encode(x).numpy(), state.encode(x).numpy())

    vit = make_encoder("random-vit", 98, seed=1)
    frames = np.random.default_rng(0).integers(0, 255, (1, 98, 98, 3), dtype=np.uint8)
    np.testing.assert_allclose(encoder_from_metadata(vit.metadata()).encode(frames).numpy(), vit.encode(frames).numpy())
    tampered = {**vit.metadata(), "weights_sha256": "0" * 64}  # e.g. features made with other weights
    with pytest.raises(WmlabError, match="differs from the one the features were made with"):
        encoder_from_metadata(tampered)
