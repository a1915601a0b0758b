import os
import socket

import torch
import torch.multiprocessing as mp

from tests.latent.conftest import SMALL
from wmlab.config import build_config
from wmlab.latent.train import LatentConfig, train_latent
from wmlab.runs import Checkpointer


def _config(dataset):
    # history 2: with one token per frame and h = 1 the attention has a single key, so q and k get no gradient and
    # Adam would turn float noise into lr-sized steps that differ between any two runs
    overrides = [
        "model.history=2",
        f"data.path={dataset}",
        "data.features=state",
        "model.variant=la-vq",
        "train.max_steps=8",
        "train.batch_size=32",
    ]
    return build_config(LatentConfig, "latent", "state", overrides=SMALL + overrides)


def _worker(rank, world, port, dataset, run):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    train_latent(_config(dataset), run, show_progress=False)
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one_process_on_the_global_batch(dataset, tmp_path):
    torch.set_num_threads(1)
    train_latent(_config(dataset), tmp_path / "single", show_progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(dataset), str(tmp_path / "ddp")), nprocs=2, join=True)
    single = Checkpointer(tmp_path / "single" / "checkpoints").load_latest()["model"]
    ddp = Checkpointer(tmp_path / "ddp" / "checkpoints").load_latest()["model"]
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, atol=1e-5, rtol=1e-4, msg=key)
