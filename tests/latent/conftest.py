"""Shared fixtures of the latent world-model tests."""

import numpy as np
import pytest

from wmlab.data.features import encode_store
from wmlab.data.trajectories import EpisodeStore

# overrides that shrink every network of the `state` preset so a few hundred steps take seconds
SMALL = [
    "model.predictor.depth=2",
    "model.predictor.heads=2",
    "model.predictor.head_dim=16",
    "model.predictor.mlp_dim=64",
    "model.idm.dim=32",
    "model.idm.depth=1",
    "model.idm.heads=2",
    "model.idm.head_dim=16",
    "model.idm.mlp_dim=64",
    "model.action_dim=8",
    "model.vq.warmup=10",
    "model.vq.mix=10",
    "train.batch_size=32",
    "train.log_every=10",
    "train.checkpoint_every=20",
]


@pytest.fixture(scope="package")
def dataset(tmp_path_factory):
    """Toy PushT-like data whose next state is a deterministic function of the state and the action."""
    path = tmp_path_factory.mktemp("toy") / "d"
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path, 8, {})
    for i in range(24):
        n = 40
        rel = rng.normal(0, 20, (n, 2))
        states = np.zeros((n, 5))
        states[0] = rng.uniform(100, 400, 5)
        for k in range(1, n):
            states[k] = states[k - 1]
            states[k, :2] += rel[k - 1]
            states[k, 2:4] += 0.5 * rel[k - 1]
        store.append_episode(
            {
                "images": np.zeros((n, 8, 8, 3), np.uint8),
                "states": states,
                "velocities": np.zeros((n, 2)),
                "rel_actions": rel,
                "abs_actions": states[:, :2] + rel,
            },
            "val" if i >= 21 else "train",
        )
    store.finalize()
    encode_store(path, "state", show_progress=False)
    return path
