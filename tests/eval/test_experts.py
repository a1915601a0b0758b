import json

import pytest

from tests.sizes import MICRO_DREAMER
from wmlab.errors import WmlabError
from wmlab.eval import experts
from wmlab.eval.zero_shot import ExpertTable

FAST = [*MICRO_DREAMER, "train.train_ratio=4"]


def test_experts_are_trained_once_reused_and_tabled(tmp_path, monkeypatch):
    contexts = [{"gravity": 9.8, "length": 0.5}, {"gravity": 2.45, "length": 0.2}]
    monkeypatch.setattr(experts, "expert_contexts", lambda env, subset="all": contexts)
    runs = experts.train_experts("cartpole", tmp_path, seeds=[0], steps=40, overrides=FAST, show_progress=False)
    assert [r.parent.name for r in runs] == ["gravity_9.8-length_0.5", "gravity_2.45-length_0.2"]
    stamps = [next((r / "checkpoints").iterdir()).stat().st_mtime_ns for r in runs]
    experts.train_experts("cartpole", tmp_path, seeds=[0], steps=40, overrides=FAST, show_progress=False)
    assert stamps == [next((r / "checkpoints").iterdir()).stat().st_mtime_ns for r in runs], "finished runs reused"
    config = (runs[1] / "config.yaml").read_text()
    assert "train_contexts: specific" in config and "variant: dreamer" in config and "modality: state" in config
    with pytest.raises(WmlabError, match="train the experts first"):
        experts.build_expert_table("cartpole", tmp_path, seeds=[0, 1], episodes=2, show_progress=False)
    table = experts.build_expert_table("cartpole", tmp_path, seeds=[0], episodes=2, show_progress=False)
    assert table.contexts == contexts and len(table.expert) == len(table.random) == 2
    assert all(r > 0 for r in table.random), "cartpole gives +1 per step"
    saved = ExpertTable.load(tmp_path / "cartpole" / "experts.json")
    assert saved == table and json.loads((tmp_path / "cartpole" / "experts.json").read_text())["env"] == "cartpole"


def test_ball_in_cup_experts_are_the_maximum_return(tmp_path, monkeypatch):
    monkeypatch.setattr(experts, "expert_contexts", lambda env, subset="all": [{"gravity": 9.81, "string_length": 0.3}])
    assert experts.train_experts("ball_in_cup", tmp_path, seeds=[0]) == []
    monkeypatch.setattr(experts, "evaluate_contexts", lambda spec, contexts, *a, **k: [{"mean": 3.0}] * len(contexts))
    table = experts.build_expert_table("ball_in_cup", tmp_path, seeds=[0], episodes=1, show_progress=False)
    assert table.expert == [1000.0] and table.random == [3.0]
