import numpy as np
import pytest
import torch

from tests.latent.conftest import SMALL
from wmlab.config import build_config
from wmlab.data.features import FeatureCache, FeatureWindows
from wmlab.data.trajectories import EpisodeStore
from wmlab.latent.metrics import summary, swap_score, teacher_forced_metrics, validation_metrics
from wmlab.latent.train import LatentConfig
from wmlab.latent.world_model import LatentWorldModel


class Leaky:
    """A 'model' whose conditioning is the flattened target itself: it predicts whatever the donor carries."""

    def predict(self, source, conditioning):
        return conditioning.reshape(source.shape)


class Ignoring:
    """A model that ignores its conditioning and predicts the source frame."""

    def predict(self, source, conditioning):
        return source


def test_swap_score_separates_leaking_from_ignoring_models():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(64, 4, 3)
    target = source + 0.01 * torch.randn(64, 4, 3)
    leak = swap_score(Leaky(), source, target.flatten(1), target, torch.Generator().manual_seed(0))
    ignore = swap_score(Ignoring(), source, torch.randn(64, 12), target, g)
    assert leak > 0.9, "predictions follow the donor's target"
    assert ignore == 0.0


def _windows(path):
    store = EpisodeStore.open(path)
    return FeatureWindows(store, FeatureCache(path / "features" / "state"), "val")


def test_shuffle_delta_is_zero_when_the_conditioning_is_ignored(dataset):
    cfg = build_config(LatentConfig, "latent", "state", overrides=SMALL + ["model.variant=action"])
    model = LatentWorldModel(cfg.model, 1, 5)
    with torch.no_grad():
        model.action_encoder.weight.zero_()
        model.action_encoder.bias.zero_()
    metrics = teacher_forced_metrics(model, _windows(dataset), batch_size=16)
    assert metrics["shuffle_delta"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["mse_base"]["mean"] == pytest.approx(metrics["latent_pred_error"]["mean"])


def test_validation_metrics_of_a_vq_model(dataset):
    cfg = build_config(LatentConfig, "latent", "state", overrides=SMALL + ["model.variant=la-vq"])
    model = LatentWorldModel(cfg.model, 1, 5)
    metrics = validation_metrics(model, _windows(dataset), rollouts=20)
    assert metrics["rollout_mse"]["n"] == 20 and metrics["rollout_mse"]["mean"] > 0
    assert 1.0 - 1e-6 <= metrics["perplexity"] <= cfg.model.vq.num_codes
    assert 0 <= metrics["dead_code_rate"] < 1 and "vq_commit_loss" in metrics
    assert set(metrics["flags"]) >= {"leakage (swap_score > 0.65)", "conditioning ignored (shuffle_delta < 0.05)"}


def test_copy_error_is_the_last_frame_baseline_and_flags_a_model_worse_than_it(dataset):
    cfg = build_config(LatentConfig, "latent", "state", overrides=SMALL + ["model.variant=action"])
    model = LatentWorldModel(cfg.model, 1, 5)
    windows = _windows(dataset)
    untrained = validation_metrics(model, windows, rollouts=4)
    flag = "worse than copying the last frame (latent_pred_error > copy_error)"
    assert untrained["copy_error"]["mean"] < untrained["latent_pred_error"]["mean"] and untrained["flags"][flag]
    model.predict = lambda source, conditioning: source  # a predictor that copies the frame it is given
    copying = teacher_forced_metrics(model, windows)  # same batches as validation_metrics
    assert copying["latent_pred_error"]["mean"] == pytest.approx(copying["copy_error"]["mean"])
    assert copying["copy_error"]["mean"] == pytest.approx(untrained["copy_error"]["mean"], rel=1e-6)


def test_summary_confidence_interval():
    s = summary([1.0, 2.0, 3.0, 4.0])
    se = np.std([1, 2, 3, 4], ddof=1) / 2
    assert s["mean"] == 2.5 and s["ci_low"] == pytest.approx(2.5 - 1.96 * se) and s["n"] == 4
