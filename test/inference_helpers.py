"""Tiny checkpoints for the inference, node-core and bag_infer tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depth_kd_core.checkpoint import save_checkpoint
from depth_kd_core.config import to_dict
from depth_kd_core.models import create_model

from tiny import tiny

NET_H, NET_W = 64, 192  # tiny training resolution (multiples of 32)
TRAIN_FOCAL_PX = 100.0  # fx of the pretend training camera at NET_H x NET_W


DEFAULT_MODEL = "adu_student"  # with the U-Net decoder: fast on CPU, predicts sigma (UEM)
FAST = {"adu_student": {"decoder": "unet"}}


def tiny_model(name: str = DEFAULT_MODEL, **overrides) -> torch.nn.Module:
    """Build the tiny variant (tiny.py) of model ``name``, seeded, at NET_H x NET_W."""
    torch.manual_seed(0)
    cfg = dict(FAST.get(name, {}), input_height=NET_H, input_width=NET_W)
    cfg.update(overrides)
    return create_model(tiny(name), **cfg)


def save_model(path: Path, model: torch.nn.Module, model_name: str = "") -> Path:
    """Write ``model`` as a deployable depth_kd checkpoint (under ``model_name`` if given)."""
    return save_checkpoint(path, {"model_name": model_name or model.cfg.name,
                                  "model_cfg": to_dict(model.cfg),
                                  "state_dict": model.state_dict()})


def tiny_checkpoint(path: Path, name: str = DEFAULT_MODEL, **overrides) -> Path:
    """Write a tiny checkpoint of model ``name``, saved under that production name.

    Its config records every field of the tiny variant, and the node processes that some tests
    start do not register test models. ``focal_px`` defaults to TRAIN_FOCAL_PX (0 = unknown).
    """
    overrides.setdefault("focal_px", TRAIN_FOCAL_PX)
    return save_model(path, tiny_model(name, **overrides), name)


@pytest.fixture(scope="module", autouse=False)
def torch_single_thread():
    """One intra-op thread for this module's tiny networks, restored afterwards.

    On 2 shared cores, torch's default of 2 OpenMP threads made a 64 x 192 forward pass 25x
    slower (0.5 s instead of 0.02 s) whenever another process was busy.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
