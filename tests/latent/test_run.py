import json

from typer.testing import CliRunner

from tests.latent.conftest import SMALL
from wmlab.cli import app


def test_train_latent_then_metrics_from_the_command_line(dataset, tmp_path):
    runner = CliRunner()
    run = tmp_path / "lavq"
    args = [
        "train",
        "latent",
        "--run",
        str(run),
        "--data",
        str(dataset),
        "--features",
        "state",
        "--variant",
        "la-vq",
        "--steps",
        "30",
        "--no-progress",
        *SMALL,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["metrics", str(run), "--rollouts", "10"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "results" / "metrics.json").read_text())
    assert saved["variant"] == "la-vq" and saved["step"] == 30 and saved["rollout_mse"]["n"] == 10
    assert "swap_score" in result.output and "perplexity" in result.output
    result = runner.invoke(app, ["metrics", str(tmp_path / "nothing")])
    assert "is not a wmlab run directory" in str(result.exception)
