"""TIE-KD (Choi, Choi & Kim, 2024; METHODS §2): teacher-independent distillation.

Distillation goes through a depth probability map built from any teacher's depth output.

The student (a DPM network) sees no ground truth: L = 10 (0.1 KL(DPM_T || DPM_S) +
0.9 (1 - SSIM(d_S, d_T))) (eq. 4-6). The teacher is any depth model — a stereo network, SGBM
or precomputed depth maps. Where a teacher has holes (SGBM), KL skips them and the SSIM term
sees the student's own (detached) depth there, so holes teach nothing. With
``confidence_weight`` (a project option, off by default as in the paper) each pixel's KL term
is weighted by the teacher's per-pixel ``confidence`` (the dense SGBM teacher's filled pixels
are less certain than its left-right-consistent ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from depth_kd_core.errors import ConfigError
from depth_kd_core.losses.tiekd import TIEKD_ALPHA, TIEKD_SCALE, TIEKD_SIGMA_M, tiekd_loss
from depth_kd_core.models.base import ModelCfg
from depth_kd_core.recipes.base import Recipe, RecipeCfg
from depth_kd_core.recipes.registry import register_recipe


@dataclass
class TieKDCfg(RecipeCfg):
    """TIE-KD recipe settings.

    Attributes: sigma (metres), alpha, scale (eq. 4); dpm_mode ("softmax_pdf" reproduces the
    released code, "normalized" is a proper Gaussian over bins); crop_top rows left out of the
    losses (KITTI 352-high crops: 110); confidence_weight: weight the KL term per pixel by the
    teacher's ``confidence`` output (the teacher must declare one).
    """

    sigma: float = TIEKD_SIGMA_M
    alpha: float = TIEKD_ALPHA
    scale: float = TIEKD_SCALE
    dpm_mode: Literal["softmax_pdf", "normalized"] = "softmax_pdf"
    crop_top: int = 0
    confidence_weight: bool = False


@register_recipe("tie_kd", TieKDCfg)
class TieKD(Recipe):
    DEFAULT_STUDENT = "tiekd_student"
    DEFAULT_TEACHER = "sgbm_teacher"

    def __init__(self, cfg: TieKDCfg, model_cfg_: ModelCfg | None = None,
                 teacher_cfg: ModelCfg | None = None) -> None:
        super().__init__(cfg, model_cfg_, teacher_cfg)
        if self.student.cfg.output_kind != "dpm":
            raise ConfigError(f"recipe tie_kd distils into a depth probability map, but model "
                              f"'{self.student.cfg.name}' outputs "
                              f"{self.student.cfg.output_kind!r} (model.head=regression is the "
                              f"no-KD baseline: train it with recipe.name=supervised)")

    def required_teacher_outputs(self) -> frozenset[str]:
        extra = {"confidence"} if self.cfg.confidence_weight else set()
        return super().required_teacher_outputs() | extra

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        teacher = self.teacher_output(batch)
        teacher_depth = teacher["depth"]
        out = self.predict(batch)
        valid = teacher_depth > 0
        weight = valid.to(teacher_depth.dtype)
        if self.cfg.confidence_weight:
            if "confidence" not in teacher:
                raise ConfigError(f"recipe.confidence_weight=true, but teacher "
                                  f"'{self.teacher.cfg.name}' gives no per-pixel confidence")
            weight = weight * teacher["confidence"]
        filled = torch.where(valid, teacher_depth, out["depth"].detach())
        return tiekd_loss(out["dpm"], out["depth"], filled, self.student.head.centres,
                          valid=weight, sigma=self.cfg.sigma, alpha=self.cfg.alpha,
                          scale=self.cfg.scale, crop_top=self.cfg.crop_top,
                          dpm_mode=self.cfg.dpm_mode)
