import numpy as np
import pytest
import torch

from wmlab.config import build_config
from wmlab.data.features import encode_store
from wmlab.data.trajectories import EpisodeStore
from wmlab.latent.train import LatentConfig, batch_indices, train_latent
from wmlab.runs import Checkpointer, read_metrics

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


@pytest.fixture(scope="module")
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


def _cfg(dataset, variant, steps):
    overrides = [f"data.path={dataset}", "data.features=state", f"model.variant={variant}", f"train.max_steps={steps}"]
    return build_config(LatentConfig, "latent", "state", overrides=SMALL + overrides)


@pytest.mark.parametrize("variant", ["action", "la-vq"])
def test_training_learns_the_toy_dynamics(dataset, tmp_path, variant):
    train_latent(_cfg(dataset, variant, 150), tmp_path / variant, show_progress=False)
    losses = [r["train/latent_pred_loss"] for r in read_metrics(tmp_path / variant / "metrics.jsonl")]
    assert losses[-1] < 0.5 * losses[0], losses
    final = Checkpointer(tmp_path / variant / "checkpoints").load_latest()
    assert final["step"] == 150 and final["encoder"]["encoder"] == "state" and final["token_shape"] == [1, 5]
    if variant == "la-vq":
        assert len(final["latent_statistics"]["mean"]) == 8 and final["latent_statistics"]["windows"] > 0


def test_resumed_training_equals_uninterrupted_training(dataset, tmp_path):
    train_latent(_cfg(dataset, "la", 40), tmp_path / "straight", show_progress=False)
    train_latent(_cfg(dataset, "la", 20), tmp_path / "resumed", show_progress=False)
    train_latent(_cfg(dataset, "la", 40), tmp_path / "resumed", show_progress=False)
    a = Checkpointer(tmp_path / "straight" / "checkpoints").load_latest()["model"]
    b = Checkpointer(tmp_path / "resumed" / "checkpoints").load_latest()["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_batches_are_seeded_epoch_permutations():
    first_epoch = np.concatenate([batch_indices(100, 10, s, seed=0) for s in range(10)])
    assert sorted(first_epoch) == list(range(100))
    assert not np.array_equal(batch_indices(100, 10, 0, 0), batch_indices(100, 10, 10, 0))
    np.testing.assert_array_equal(batch_indices(100, 10, 13, 0), batch_indices(100, 10, 13, 0))
