"""Model registry: ``register_model``, ``create_model(name, **overrides)``, ``list_models()``.

A model is registered with its config dataclass (a ``ModelCfg`` subclass)::

    @register_model("tiekd_student", TieKDStudentCfg)
    def tiekd_student(cfg): return TieKDStudent(cfg)

    model = create_model("tiekd_student", encoder="test_mobilenet", input_height=64)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from depth_kd_core.checkpoint import load_checkpoint
from depth_kd_core.errors import CheckpointError
from depth_kd_core.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", populate="depth_kd_core.models")


def register_model(name: str, cfg_cls: type):
    """Register ``builder(cfg) -> nn.Module`` under ``name`` (a decorator)."""
    return MODELS.register(name, cfg_cls)


def create_model(name: str, cfg: Any = None, **overrides: Any) -> nn.Module:
    """Build model ``name`` from its defaults, an optional ``cfg`` and keyword overrides.

    The built module carries its validated config as ``model.cfg``.
    """
    return MODELS.create(name, cfg, **overrides)


def model_cfg(name: str, cfg: Any = None, **overrides: Any) -> Any:
    """Return the validated ``ModelCfg`` that ``create_model`` would use."""
    return MODELS.build_cfg(name, cfg, **overrides)


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return MODELS.names()


def model_from_checkpoint(path_or_ckpt: str | Path | dict,
                          map_location: str | torch.device = "cpu",
                          **cfg_overrides: Any) -> tuple[nn.Module, dict]:
    """Rebuild the checkpoint's network with its config and weights; returns (model, ckpt).

    ``cfg_overrides`` replace config fields that do not change the weights' shapes (e.g.
    ``pretrained=False`` is always applied so nothing is downloaded).
    """
    ckpt = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_checkpoint(path_or_ckpt,
                                                                               map_location)
    cfg = dict(ckpt["model_cfg"])
    cfg.update(pretrained=False, **cfg_overrides)
    cfg.pop("name", None)
    model = create_model(ckpt["model_name"], **cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit model '{ckpt['model_name']}': "
                              f"{exc}") from exc
    return model.to(map_location), ckpt
