"""Config: defaults <- YAML <- key=value, with errors that name the key and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from depth_kd_core.config import (
    build_dataclass,
    load_config,
    parse_overrides,
    registry_section,
    save_run_config,
    to_dict,
)
from depth_kd_core.errors import ConfigError
from depth_kd_core.models.base import ModelCfg
from depth_kd_core.models.registry import MODELS
from depth_kd_core.registry import RegistryEntry


@dataclass
class OptimSection:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class TrainerSection:
    max_steps: int = 100
    out_dir: str = "runs/x"
    amp: bool = False
    milestones: list[int] = field(default_factory=lambda: [30, 40])
    resume: str | None = None


@dataclass
class ToyModelCfg(ModelCfg):
    width: int = 8


@dataclass
class Root:
    seed: int = 0
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    model: ModelCfg = registry_section(MODELS, lambda: ToyModelCfg(name="toy_model"))


@pytest.fixture()
def toy_model(monkeypatch):
    """Register 'toy_model' for the duration of one test only."""
    MODELS.names()  # populate the built-in entries first
    monkeypatch.setitem(MODELS._entries, "toy_model",
                        RegistryEntry("toy_model", lambda cfg: cfg, ToyModelCfg))


def test_defaults_then_yaml_then_overrides(tmp_path, toy_model):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"optim": {"lr": 0.01, "name": "adamw"},
                                    "trainer": {"max_steps": 5}}))
    cfg = load_config(Root, path, ["optim.lr=1e-4", "trainer.amp=true", "model.width=16"])
    assert cfg.optim.name == "adamw"  # from YAML
    assert cfg.optim.lr == pytest.approx(1e-4)  # override beats YAML, "1e-4" read as float
    assert cfg.trainer.max_steps == 5
    assert cfg.trainer.amp is True
    assert cfg.trainer.milestones == [30, 40]  # default kept
    assert isinstance(cfg.model, ToyModelCfg) and cfg.model.width == 16


def test_unknown_key_names_key_and_closest(toy_model):
    with pytest.raises(ConfigError) as err:
        load_config(Root, None, ["optim.lrr=0.1"])
    assert "optim.lrr" in str(err.value) and "did you mean 'optim.lr'" in str(err.value)


def test_unknown_key_in_polymorphic_section(toy_model):
    with pytest.raises(ConfigError) as err:
        load_config(Root, None, ["model.widht=3"])
    assert "model.widht" in str(err.value) and "model.width" in str(err.value)


def test_wrong_type_names_key_and_expected_type(toy_model):
    with pytest.raises(ConfigError, match=r"trainer\.max_steps.*int.*'abc'"):
        load_config(Root, None, ["trainer.max_steps=abc"])
    with pytest.raises(ConfigError, match=r"trainer\.amp.*bool"):
        load_config(Root, None, ["trainer.amp=3"])
    with pytest.raises(ConfigError, match=r"optim\.betas.*2 values"):
        load_config(Root, None, ["optim.betas=[0.9]"])


def test_literal_choice_suggests_closest(toy_model):
    with pytest.raises(ConfigError, match=r"optim\.name.*did you mean 'adamw'"):
        load_config(Root, None, ["optim.name=adanw"])


def test_unknown_model_name_is_a_config_error(toy_model):
    with pytest.raises(ConfigError, match=r"model\.name.*toy_modle"):
        load_config(Root, None, ["model.name=toy_modle"])


def test_model_cfg_validation_runs_on_load(toy_model):
    with pytest.raises(ConfigError, match="multiple of size_multiple"):
        load_config(Root, None, ["model.input_height=100"])


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["optim.lr"])
    assert parse_overrides(["a.b.c=[1, 2]", "a.d=x"]) == {"a": {"b": {"c": [1, 2]}, "d": "x"}}


def test_missing_yaml_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(Root, tmp_path / "nope.yaml")


def test_yaml_base_inheritance(tmp_path, toy_model):
    (tmp_path / "base.yaml").write_text("optim: {lr: 0.5}\ntrainer: {max_steps: 7}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\noptim: {name: sgd}\n")
    cfg = load_config(Root, tmp_path / "child.yaml")
    assert (cfg.optim.name, cfg.optim.lr, cfg.trainer.max_steps) == ("sgd", 0.5, 7)


def test_run_snapshot_round_trips(tmp_path, toy_model):
    cfg = load_config(Root, None, ["optim.lr=0.003", "trainer.resume=last"])
    path = save_run_config(cfg, tmp_path / "run")
    again = build_dataclass(Root, yaml.safe_load(path.read_text()))
    assert to_dict(again) == to_dict(cfg)
    sha = (tmp_path / "run" / "git_sha.txt").read_text().strip()
    assert sha == "unknown" or len(sha.split("+")[0]) == 40
