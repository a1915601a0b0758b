from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from wmlab.config import build_config, diff, from_dict, load_config, load_preset, parse_overrides, save_config, to_dict
from wmlab.errors import WmlabError


@dataclass
class ModelConfig:
    deter: int = 512
    hidden: int = 512
    act: Literal["silu", "elu"] = "silu"


@dataclass
class TrainConfig:
    seed: int = 0
    lr: float = 1e-4
    env: str = "walker"
    contexts: Optional[str] = None
    layers: list[int] = field(default_factory=lambda: [128, 128])
    model: ModelConfig = field(default_factory=ModelConfig)


def test_overrides_are_typed_and_nested():
    cfg = build_config(TrainConfig, overrides=["model.deter=256", "lr=3", "layers=[64, 32]", "contexts=double_box"])
    assert cfg.model.deter == 256 and cfg.model.hidden == 512
    assert cfg.lr == 3.0 and isinstance(cfg.lr, float)
    assert cfg.layers == [64, 32] and cfg.contexts == "double_box"
    assert build_config(TrainConfig, overrides=["lr=3e-5"]).lr == 3e-5, "YAML reads 3e-5 as a string"


def test_unknown_key_names_valid_keys_and_nearest():
    with pytest.raises(WmlabError) as e:
        build_config(TrainConfig, overrides=["model.detr=256"])
    message = str(e.value)
    assert "model.detr" in message and "deter, hidden" in message and "did you mean 'deter'" in message


def test_wrong_types_are_errors():
    for override in ("model.deter=big", "lr=[1]", "model.act=relu", "model=3", "seed=1.5", "seed=true"):
        with pytest.raises(WmlabError, match="expects|must be one of|section"):
            build_config(TrainConfig, overrides=[override])
    with pytest.raises(WmlabError, match="key=value"):
        parse_overrides(["model.deter"])


def test_presets_compose_over_their_base(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "paper.yaml").write_text("lr: 1.0e-4\nmodel: {deter: 512}\n")
    (tmp_path / "train" / "tiny.yaml").write_text("base: paper\nmodel: {deter: 128}\nseed: 3\n")
    assert load_preset("train", "tiny", root=tmp_path) == {"lr": 1e-4, "model": {"deter": 128}, "seed": 3}
    cfg = build_config(
        TrainConfig, "train", "tiny", overrides=["seed=4"], extra={"env": "cartpole"}, preset_root=tmp_path
    )
    assert (cfg.model.deter, cfg.seed, cfg.env, cfg.lr) == (128, 4, "cartpole", 1e-4)
    with pytest.raises(WmlabError, match="did you mean 'tiny'"):
        load_preset("train", "tiyn", root=tmp_path)
    (tmp_path / "train" / "loop.yaml").write_text("base: loop\n")
    with pytest.raises(WmlabError, match="cycle"):
        load_preset("train", "loop", root=tmp_path)


def test_yaml_round_trip_and_diff(tmp_path):
    cfg = build_config(TrainConfig, overrides=["model.act=elu"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(TrainConfig, tmp_path / "config.yaml") == cfg
    other = from_dict(TrainConfig, {**to_dict(cfg), "seed": 9})
    assert diff(cfg, other) == ["seed"]
    (tmp_path / "bad.yaml").write_text("sede: 1\n")
    with pytest.raises(WmlabError, match="did you mean 'seed'"):
        load_config(TrainConfig, tmp_path / "bad.yaml")
