"""Tiny checkpoints for the inference, node-core and bag_infer tests."""

from __future__ import annotations

from pathlib import Path

import torch

from depth_kd_core.checkpoint import save_checkpoint
from depth_kd_core.config import to_dict
from depth_kd_core.models import create_model
from tiny import TINY

NET_H, NET_W = 64, 192  # tiny training resolution (multiples of 32)
TRAIN_FOCAL_PX = 100.0  # fx of the pretend training camera at NET_H x NET_W


def tiny_model(name: str = "tiekd_student", **overrides) -> torch.nn.Module:
    """A tiny, randomly initialised (seeded) registered model at NET_H x NET_W."""
    torch.manual_seed(0)
    cfg = dict(TINY[name], input_height=NET_H, input_width=NET_W)
    cfg.update(overrides)
    return create_model(name, **cfg)


def save_model(path: Path, model: torch.nn.Module) -> Path:
    """Write ``model`` as a deployable depth_kd checkpoint."""
    return save_checkpoint(path, {"model_name": model.cfg.name, "model_cfg": to_dict(model.cfg),
                                  "state_dict": model.state_dict()})


def tiny_checkpoint(path: Path, name: str = "tiekd_student", **overrides) -> Path:
    """A tiny checkpoint; ``focal_px`` defaults to TRAIN_FOCAL_PX (0 = unknown)."""
    overrides.setdefault("focal_px", TRAIN_FOCAL_PX)
    return save_model(path, tiny_model(name, **overrides))
