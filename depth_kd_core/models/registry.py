"""Model registry: ``register_model``, ``create_model(name, **overrides)``, ``list_models()``.

A model is registered with its config dataclass (a ``ModelCfg`` subclass)::

    @register_model("tiekd_student", TieKDStudentCfg)
    def tiekd_student(cfg): return TieKDStudent(cfg)

    model = create_model("tiekd_student", encoder="test_mobilenet", input_height=64)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from depth_kd_core.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", populate="depth_kd_core.models")


def register_model(name: str, cfg_cls: type):
    """Decorator registering ``builder(cfg) -> nn.Module`` under ``name``."""
    return MODELS.register(name, cfg_cls)


def create_model(name: str, cfg: Any = None, **overrides: Any) -> nn.Module:
    """Build model ``name`` from its defaults, an optional ``cfg`` and keyword overrides.

    The built module carries its validated config as ``model.cfg``.
    """
    return MODELS.create(name, cfg, **overrides)


def model_cfg(name: str, cfg: Any = None, **overrides: Any) -> Any:
    """The validated ``ModelCfg`` that ``create_model`` would use."""
    return MODELS.build_cfg(name, cfg, **overrides)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()
