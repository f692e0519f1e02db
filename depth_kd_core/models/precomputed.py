"""A teacher whose depth was computed beforehand (TIE-KD: any teacher, stored once).

The data pipeline supplies the ``teacher_depth`` batch key (from 16-bit PNG files x256 or a
depth topic of a bag); this module passes it through as the teacher's output, so recipes
treat precomputed and live teachers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from depth_kd_core.models.base import DepthModel, ModelCfg
from depth_kd_core.models.registry import register_model


@dataclass
class PrecomputedCfg(ModelCfg):
    batch_keys: ClassVar[frozenset[str]] = frozenset({"teacher_depth"})
    size_multiple: int = 1


class PrecomputedTeacher(DepthModel):
    """forward(left, teacher_depth=...) -> {"depth": teacher_depth} (B, 1, H, W) metres."""

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, *,
                teacher_depth: torch.Tensor | None = None, **context) -> dict:
        if teacher_depth is None:
            raise ValueError("precomputed_teacher needs the batch key 'teacher_depth' "
                             "(configure precomputed teacher depth files or a depth topic)")
        if teacher_depth.shape[-2:] != left.shape[-2:]:
            raise ValueError(f"teacher_depth {tuple(teacher_depth.shape)} does not match the "
                             f"image size {tuple(left.shape[-2:])}")
        return {"depth": teacher_depth}


@register_model("precomputed_teacher", PrecomputedCfg)
def precomputed_teacher(cfg: PrecomputedCfg) -> PrecomputedTeacher:
    return PrecomputedTeacher(cfg)
