import json

import numpy as np
from typer.testing import CliRunner

from tests.sizes import MICRO_DREAMER
from wmlab.cli import app
from wmlab.envs.contexts import context_space, expert_contexts
from wmlab.eval.zero_shot import ExpertTable, grid_records

FAST = [*MICRO_DREAMER, "train.train_ratio=4", "ctx.window=4", "ctx.width=8", "ctx.fw_units=8"]


def test_train_grid_eval_and_zero_shot_report_end_to_end(tmp_path):
    runner = CliRunner()
    runs = []
    for variant, seed, workers in (("dreamer", 0, "1"), ("dali-s", 0, "2"), ("dali-s", 1, "1")):
        run = tmp_path / f"{variant}-{seed}"
        args = [
            "train",
            "dreamer",
            "--env",
            "cartpole",
            "--contexts",
            "double_box",
            "--variant",
            variant,
            "--seed",
            str(seed),
            "--steps",
            "60",
            "--run",
            str(run),
            "--no-progress",
            *FAST,
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["eval", str(run), "--grid", "--episodes", "1", "--workers", workers])
        assert result.exit_code == 0, result.output
        assert len(grid_records(run)) == 84
        runs.append(str(run))
    space = context_space("cartpole")
    contexts = [space.complete(c) for c in expert_contexts("cartpole")]
    ExpertTable("cartpole", contexts, [500.0] * len(contexts), [10.0] * len(contexts)).save(tmp_path / "experts.json")
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        ["report", *runs, "--experts", str(tmp_path / "experts.json"), "--out", str(out), "--reps", "100"],
    )
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "Zero-shot generalisation" in html and "data:image/png;base64," in html, "self-contained HTML report"
    assert "| extrapolation | DALI-S |" in (out / "report.md").read_text()
    out = out / "zero_shot"
    report = json.loads((out / "zero_shot.json").read_text())
    assert report["methods"] == ["Dreamer-DR", "DALI-S"] and report["reference"] == "DALI-S"
    assert report["regions"]["interpolation"]["DALI-S"]["shape"] == [2, 10]
    assert report["regions"]["extrapolation"]["Dreamer-DR"]["shape"] == [1, 36]
    assert report["regions"]["mixed"]["Dreamer-DR"]["shape"] == [1, 38]
    iqm = report["regions"]["extrapolation"]["DALI-S"]["iqm"]
    assert iqm["low"] <= iqm["value"] <= iqm["high"] and np.isfinite(iqm["value"])
    assert "extrapolation: P(DALI-S > Dreamer-DR)" in report["improvement"]
    assert (out / "iqm.png").stat().st_size > 0 and (out / "improvement.png").stat().st_size > 0
    assert "| extrapolation | DALI-S |" in (out / "zero_shot.md").read_text()
