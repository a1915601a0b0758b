"""`state`: the 5-d PushT state as one normalised token (spec §5.4)."""

import math

import numpy as np
import pytest
import torch

from wmlab.encoders import StateEncoder
from wmlab.errors import WmlabError

MEAN = [256.0, 256.0, 256.0, 256.0, math.pi]
STD = [100.0, 100.0, 50.0, 50.0, 2.0]


def test_raw_token_is_the_normalised_state():
    encoder = StateEncoder(MEAN, STD)
    states = np.array([[356.0, 156.0, 256.0, 306.0, math.pi + 1.0], [256.0, 256.0, 256.0, 256.0, math.pi]])
    tokens = encoder.encode(states)
    assert encoder.token_shape == (1, 5) and tokens.shape == (2, 1, 5) and tokens.dtype == torch.float32
    torch.testing.assert_close(tokens[:, 0], torch.tensor([[1.0, -1.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]]))


def test_sincos_token_replaces_the_angle_and_is_continuous_at_two_pi():
    encoder = StateEncoder(MEAN, STD, angle="sincos")
    states = torch.tensor([[256.0, 256.0, 306.0, 206.0, 0.01], [256.0, 256.0, 306.0, 206.0, 2 * math.pi - 0.01]])
    tokens = encoder.encode(states)
    assert encoder.token_shape == (1, 6) and tokens.shape == (2, 1, 6)
    torch.testing.assert_close(tokens[0, 0, :4], torch.tensor([0.0, 0.0, 1.0, -1.0]))
    torch.testing.assert_close(tokens[0, 0, 4:], torch.tensor([math.cos(0.01), math.sin(0.01)]))
    assert (tokens[0] - tokens[1]).norm() < 0.03  # raw normalised angles would differ by ~3.1
    raw = StateEncoder(MEAN, STD).encode(states)
    assert (raw[0] - raw[1]).norm() > 3.0


def test_bad_states_and_statistics_are_explained():
    encoder = StateEncoder(MEAN, STD)
    with pytest.raises(WmlabError, match=r"states\[:, :5\]"):
        encoder.encode(np.zeros((2, 7)))
    with pytest.raises(WmlabError, match="positive"):
        StateEncoder(MEAN, [1.0, 1.0, 0.0, 1.0, 1.0])
    with pytest.raises(WmlabError, match=r"shape \(5,\)"):
        StateEncoder(MEAN[:4], STD[:4])
    with pytest.raises(WmlabError, match="did you mean 'sincos'"):
        StateEncoder(MEAN, STD, angle="sin-cos")
