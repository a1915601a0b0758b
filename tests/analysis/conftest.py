"""Tiny trained runs shared by the analysis tests (trained once per session, in seconds)."""

import pytest

from tests.sizes import MICRO_DREAMER
from wmlab.config import build_config
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.train import train_dreamer

FAST = [*MICRO_DREAMER, "train.batch_size=4", "train.train_ratio=8", "train.log_every=50", "train.checkpoint_every=100"]
CONTEXT = ["context.window=8", "context.width=8", "context.fw_units=8", "context.dim=4"]


def train_tiny(path, *overrides):
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=[*FAST, *CONTEXT, "env.name=pendulum", *overrides])
    train_dreamer(cfg, path, show_progress=False)
    return path


@pytest.fixture(scope="session")
def dali_run(tmp_path_factory):
    """A dali-s pendulum run (state modality, K = 8, d_c = 4) trained for one episode."""
    return train_tiny(tmp_path_factory.mktemp("analysis") / "dali", "variant=dali-s", "train.steps=200")
