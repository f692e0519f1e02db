"""Model and recipe registries: names, defaults, validated overrides, helpful errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn

from depth_kd_core.errors import ConfigError, RegistryError
from depth_kd_core.models.base import ModelCfg
from depth_kd_core.models.registry import MODELS, create_model, list_models, register_model
from depth_kd_core.recipes.registry import RECIPES, create_recipe, list_recipes
from depth_kd_core.registry import Registry, RegistryEntry


@dataclass
class TinyCfg(ModelCfg):
    channels: int = 4


class Tiny(nn.Module):
    def __init__(self, cfg: TinyCfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Conv2d(3, cfg.channels, 1)


@pytest.fixture()
def tiny(monkeypatch):
    MODELS.names()
    monkeypatch.setitem(MODELS._entries, "tiny_net", RegistryEntry("tiny_net", Tiny, TinyCfg))


def test_create_model_applies_defaults_and_overrides(tiny):
    model = create_model("tiny_net", channels=7, input_height=64)
    assert model.cfg.name == "tiny_net"
    assert model.conv.out_channels == 7
    assert model.cfg.input_height == 64 and model.cfg.input_width == 640  # default kept
    assert "tiny_net" in list_models()


def test_create_model_from_cfg_object(tiny):
    cfg = TinyCfg(channels=3)
    assert create_model("tiny_net", cfg, channels=5).conv.out_channels == 5


def test_unknown_model_suggests_closest(tiny):
    with pytest.raises(RegistryError, match="did you mean 'tiny_net'"):
        create_model("tiny_nett")


def test_bad_override_names_the_key(tiny):
    with pytest.raises(ConfigError, match=r"tiny_net\.chanels.*tiny_net\.channels"):
        create_model("tiny_net", chanels=3)
    with pytest.raises(ConfigError, match=r"tiny_net\.channels.*int"):
        create_model("tiny_net", channels="many")


def test_duplicate_registration_is_refused():
    reg = Registry("thing", populate="depth_kd_core")
    reg.register("a", TinyCfg)(Tiny)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", TinyCfg)(lambda cfg: cfg)


def test_register_model_requires_a_dataclass():
    with pytest.raises(TypeError, match="dataclass"):
        register_model("x", dict)


def test_recipe_registry_has_the_same_pattern(monkeypatch):
    RECIPES.names()
    monkeypatch.setitem(RECIPES._entries, "toy_recipe",
                        RegistryEntry("toy_recipe",
                                      lambda cfg, model, teacher: ("built", cfg.channels),
                                      TinyCfg))
    assert "toy_recipe" in list_recipes()
    assert create_recipe("toy_recipe", channels=2) == ("built", 2)
