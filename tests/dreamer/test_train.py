import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import wmlab.envs
from tests.sizes import MICRO_DREAMER
from wmlab.config import build_config, from_dict
from wmlab.dreamer.agent import DreamerAgent
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.evaluation import evaluate_run
from wmlab.dreamer.policy import evaluate, load_policy
from wmlab.dreamer.train import train_dreamer
from wmlab.errors import WmlabError
from wmlab.runs import Checkpointer, read_metrics

FAST = [*MICRO_DREAMER, "train.batch_size=4", "train.train_ratio=8", "train.log_every=50", "train.checkpoint_every=100"]


def _cfg(*overrides):
    return build_config(DreamerConfig, "dreamer", "tiny", overrides=[*FAST, *overrides])


def test_training_logs_checkpoints_and_evaluates(tmp_path):
    run = tmp_path / "pend"
    summary = train_dreamer(_cfg("env.name=pendulum", "train.steps=450"), run, show_progress=False)
    assert summary["env_steps"] == 450 and summary["updates"] > 50 and summary["episodes"] == 2
    records = read_metrics(run / "metrics.jsonl")
    assert any("wm/loss" in r and np.isfinite(r["wm/loss"]) for r in records)
    assert any("perf/env_steps_per_s" in r for r in records)
    assert [r["episode/return"] < 0 for r in records if "episode/return" in r] == [True, True]
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    result = evaluate_run(run, episodes=2, context={"l": 1.6})
    assert result["context"] == {"l": 1.6, "m": 1.0} and len(result["returns"]) == 2
    assert json.loads((run / "results" / "eval.jsonl").read_text().splitlines()[-1])["mean"] == result["mean"]
    # the Python API: a policy that steps any env of the task, also greedy
    policy = load_policy(run, mode="mode")
    env = wmlab.envs.make("pendulum", context={"m": 0.5})
    first = evaluate(policy, env, episodes=1, seed=3)
    assert first == evaluate(policy, env, episodes=1, seed=3), "greedy evaluation is deterministic"
    with pytest.raises(WmlabError, match="state"):
        policy.act({"image": np.zeros((64, 64, 3), np.uint8)}, True)


def test_discrete_pixel_run_writes_openloop_video(tmp_path):
    run = tmp_path / "cart"
    train_dreamer(
        _cfg("env.name=cartpole", "env.modality=pixels", "train.steps=160", "train.video_every=40"),
        run,
        show_progress=False,
    )
    videos = list((run / "videos").glob("openloop-*.mp4"))
    assert videos and videos[0].stat().st_size > 0


def test_resume_with_another_config_is_refused(tmp_path):
    train_dreamer(_cfg("train.steps=60"), tmp_path / "r", show_progress=False)
    with pytest.raises(WmlabError, match="model.deter"):
        train_dreamer(_cfg("train.steps=60", "model.deter=48"), tmp_path / "r", show_progress=False)


def _command(run, steps):
    return [
        sys.executable,
        "-m",
        "wmlab",
        "train",
        "dreamer",
        "--env",
        "pendulum",
        "--preset",
        "tiny",
        "--run",
        str(run),
        "--steps",
        str(steps),
        "--no-progress",
        *FAST,
    ]


def test_sigkill_then_same_command_resumes_where_it_stopped(tmp_path):
    run = tmp_path / "killed"
    process = subprocess.Popen(
        _command(run, 100_000), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    checkpoints = Checkpointer(run / "checkpoints")
    deadline = time.time() + 400  # generous: a loaded CPU slows the child's start and its first 200 steps
    while time.time() < deadline and checkpoints.latest_step() < 200:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert time.time() < deadline, "no checkpoint at >= 200 env steps before the deadline"
    saved = checkpoints.load_latest()
    at = saved["counters"]["env_steps"]
    assert at >= 200
    params = {k: v.clone() for k, v in saved["agent"]["model"].items()}

    subprocess.run(_command(run, at + 100), check=True, capture_output=True, timeout=300)
    final = checkpoints.load_latest()
    counters = final["counters"]
    assert counters["env_steps"] == at + 100
    new_updates = counters["updates"] - saved["counters"]["updates"]
    assert 100 * 8 / 32 - 1 <= new_updates <= 100 * 8 / 32 + 1, "updates continue at the train ratio"
    assert sum(final["replay_steps"]) >= sum(saved["replay_steps"]) + 100, "replay continues, not restarted"
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl")]
    assert steps == sorted(steps) and steps[-1] == at + 100, "metrics continue from the checkpoint"
    fresh = DreamerAgent(from_dict(DreamerConfig, final["config"]), obs_dim=3, action_dim=1, discrete=False)
    fresh = fresh.state_dict()
    weights = [k for k in params if params[k].is_floating_point() and params[k].dim() == 2]

    def distance(state):
        return sum((state[k].float() - params[k].float()).abs().mean().item() for k in weights)

    moved = distance(final["agent"]["model"])
    assert 0 < moved < 0.2 * distance(fresh), "parameters continue from the checkpoint, not from a new init"


def test_a_bad_environment_leaves_no_run_directory(tmp_path):
    with pytest.raises(WmlabError, match="string_length"):
        train_dreamer(
            _cfg("env.name=ball_in_cup", "env.train_contexts=specific", "env.context={string_length: -1}"),
            tmp_path / "bad",
            show_progress=False,
        )
    assert not (tmp_path / "bad").exists()


def test_a_resumed_run_logs_on_the_uninterrupted_schedule_and_keeps_its_returns(tmp_path):
    # resumed at 230, off the logging schedule: a schedule restarted there would log at 280, 330, ...
    schedule = ["env.name=pendulum", "train.log_every=50", "train.checkpoint_every=70"]
    straight = train_dreamer(_cfg("train.steps=430", *schedule), tmp_path / "a", show_progress=False)
    train_dreamer(_cfg("train.steps=230", *schedule), tmp_path / "b", show_progress=False)
    resumed = train_dreamer(_cfg("train.steps=430", *schedule), tmp_path / "b", show_progress=False)

    def logged(run):
        records = read_metrics(run / "metrics.jsonl")
        return [r["step"] for r in records if "perf/env_steps_per_s" in r], records

    steps_a, _ = logged(tmp_path / "a")
    steps_b, records = logged(tmp_path / "b")
    assert steps_a == [*range(50, 401, 50), 430]
    assert steps_b == [50, 100, 150, 200, 230, *range(250, 401, 50), 430], "the first run's last step logs too"
    returns = [r["episode/return"] for r in records if "episode/return" in r]
    assert len(returns) == 2, "one 200-step episode before the resume at 230, one after it (the cut one is not logged)"
    assert resumed["return_last10"] == np.mean(returns), "the last-10 return still counts the episode before"
    assert records[-1]["episode/return_last10"] == np.mean(returns)
    assert straight["episodes"] == 2 and resumed["episodes"] == 2


def _plain_command(run, steps):
    command = _command(run, steps)
    command.remove("--no-progress")
    return command


def test_without_a_terminal_training_prints_plain_lines(tmp_path):
    run = tmp_path / "plain"
    out = tmp_path / "out.txt"
    with open(out, "w") as f:  # stdout to a file, as under nohup or a cluster job
        subprocess.run(_plain_command(run, 250), stdout=f, stderr=subprocess.STDOUT, check=True, timeout=300)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("train dreamer: variant dreamer, pendulum (state), run ") and "fresh run" in lines[0]
    progress = [line for line in lines if line.startswith("train pendulum: ")]
    assert [line.split()[2] for line in progress] == ["50/250", "100/250", "150/250", "200/250", "250/250"]
    assert all("steps/s" in line for line in progress) and "wm_loss" in progress[-1]
    with open(out, "w") as f:
        subprocess.run(_plain_command(run, 300), stdout=f, stderr=subprocess.STDOUT, check=True, timeout=300)
    first = out.read_text().splitlines()[0]
    assert "resumed from the checkpoint at 250 env steps (target 300)" in first
    assert "1 episode(s) in progress there (after 50 steps) end unlogged" in first
