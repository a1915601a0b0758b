import subprocess
import sys

import imageio.v2 as imageio
from typer.testing import CliRunner

from tests.sizes import MICRO_DREAMER
from wmlab.cli import app

runner = CliRunner()


def test_envs_lists_every_environment_with_its_features():
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for word in (
        "walker",
        "ball_in_cup",
        "cartpole",
        "pendulum",
        "actuator_strength",
        "string_length",
        "[4.9, 14.7]",
        "84 contexts",
        "76 contexts",
    ):
        assert word in result.output


def test_envs_show_writes_a_video_and_prints_the_physics(tmp_path):
    out = tmp_path / "ball.gif"
    args = [
        "envs",
        "show",
        "ball_in_cup",
        "--context",
        "gravity=4.0",
        "string_length=0.6",
        "--steps",
        "12",
        "--size",
        "48",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "[0.0, 0.0, -4.0]" in result.output and "string_tendon_range: [0.0, 0.6]" in result.output
    assert "extrapolation" in result.output and "string_length" in result.output
    frames = imageio.mimread(out)
    assert len(frames) == 13 and frames[0].shape[:2] == (48, 48)


def test_user_mistakes_exit_2_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "wmlab", "envs", "show", "walker", "-c", "gravity=-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "physical bounds" in result.stderr and "Traceback" not in result.stderr


def test_train_then_eval_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    fast = [*MICRO_DREAMER, "train.train_ratio=8"]
    result = runner.invoke(
        app, ["train", "dreamer", "--env", "pendulum", "--run", str(run), "--steps", "120", "--no-progress", *fast]
    )
    assert result.exit_code == 0, result.output
    assert "120 env steps" in result.output
    result = runner.invoke(app, ["eval", str(run), "--episodes", "1", "-c", "m=0.5"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert '"m": 0.5' in result.output and "checkpoint at 120 steps" in result.output
    result = runner.invoke(app, ["train", "dreamer", "--run", str(run), "model.detr=3"])
    assert "did you mean 'deter'" in str(result.exception)


def _wmlab(*args):
    """Run the installed command with stdout and stderr to pipes (not a terminal), as in a log file."""
    return subprocess.run([sys.executable, "-m", "wmlab", *args], capture_output=True, text=True, timeout=300)


def test_damaged_runs_and_wrong_commands_get_one_line_each(tmp_path):
    run = tmp_path / "run"
    fast = [*MICRO_DREAMER, "train.train_ratio=8", "train.checkpoint_every=50"]
    result = runner.invoke(
        app, ["train", "dreamer", "--env", "pendulum", "--run", str(run), "--steps", "120", "--no-progress", *fast]
    )
    assert result.exit_code == 0, result.output
    newest = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    newest.write_bytes(b"not a checkpoint")

    # a damaged newest checkpoint: one warning line, and the one before it is used
    done = _wmlab("eval", str(run), "--episodes", "1")
    assert done.returncode == 0, done.stderr
    warning_lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: checkpoint "), done.stderr
    assert "using the one before it" in warning_lines[0] and "UserWarning" not in done.stderr
    assert "checkpoint at 100 steps" in done.stdout

    # a latent command on a Dreamer run, and an option train dreamer does not have: one line, exit 2
    for args, expected in (
        (["plan", str(run)], "is a dreamer run; this command needs a latent run"),
        (["train", "dreamer", "--run", str(run), "--context", "g=3"], "--contexts specific env.context."),
        (["train", "dreamer", "--env", "pendulum"], "Missing option '--run' / '--run-dir'. (see `"),
    ):
        failed = _wmlab(*args)
        assert failed.returncode == 2, failed.stderr
        assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("error: "), failed.stderr
        assert expected in failed.stderr and "Traceback" not in failed.stderr
    for args in (["metrics", str(run)], ["train", "decoder", str(run)]):
        assert "is a dreamer run; this command needs a latent run" in str(runner.invoke(app, args).exception)

    # every checkpoint damaged, then a damaged config: exit 2, one line, nothing written
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        path.write_bytes(b"\x00garbage")
    results = (run / "results" / "eval.jsonl").read_bytes()
    failed = _wmlab("eval", str(run), "--episodes", "1")
    assert failed.returncode == 2 and "no readable checkpoint" in failed.stderr.splitlines()[-1]
    assert all(line.startswith("warning: ") for line in failed.stderr.splitlines()[:-1])
    (run / "config.yaml").write_bytes(b"seed: [0\n\xff")
    failed = _wmlab("eval", str(run), "--episodes", "1")
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
    assert "config.yaml is not valid YAML" in failed.stderr and "restore it" in failed.stderr
    assert (run / "results" / "eval.jsonl").read_bytes() == results
