"""SDFA-Net (Zhou & Dong, ECCV 2022; METHODS §1).

Self-supervised stereo training in two stages on one network.

Stage 1 trains the raw path: L_rec (right view rebuilt from the left disparity volume, eq. 7
and 14) + 0.0008 L_smo^raw. From ``distill_from_epoch`` on, stage 2 adds the self-distilled
path run on horizontally flipped encoder features: its depth learns from the raw path's
(stop-gradient) depth where the raw path reconstructs the left image well (photometric mask,
eq. 11) and the pixel is visible in the right view (eq. 12-13): + 0.01 L_sd + 0.0016 L_smo^d.
After stage 2 the distilled path (unflipped) is the deployed prediction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from depth_kd_core.layers.geometry import warp_horizontal
from depth_kd_core.losses.photometric import photometric_error
from depth_kd_core.losses.sdfa import (
    PHOTO_T1,
    PHOTO_T2,
    SDFA_W_SD,
    SDFA_W_SMOOTH_DISTILLED,
    VISIBLE_SEARCH,
    edge_mask,
    photometric_mask,
    self_distillation_loss,
    visible_mask,
)
from depth_kd_core.losses.smoothness import sdfa_smoothness
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.selfsup_stereo import (
    SelfsupStereo,
    SelfsupStereoCfg,
    volume_stage1_loss,
)


@dataclass
class SdfaNetCfg(SelfsupStereoCfg):
    """SDFA-Net recipe settings.

    Attributes: distill_from_epoch (paper: 25 of 50); distill_from_step overrides it when
    >= 0; loss weights and mask thresholds of eq. 11-18.
    """

    distill_from_epoch: int = 25
    distill_from_step: int = -1
    w_sd: float = SDFA_W_SD
    w_smooth_distilled: float = SDFA_W_SMOOTH_DISTILLED
    t1: float = PHOTO_T1
    t2: float = PHOTO_T2
    visible_search: int = VISIBLE_SEARCH


@register_recipe("sdfa_net", SdfaNetCfg)
class SdfaNetRecipe(SelfsupStereo):
    DEFAULT_STUDENT = "sdfa_net"

    @property
    def distill_step(self) -> int:
        if self.cfg.distill_from_step >= 0:
            return self.cfg.distill_from_step
        return self.cfg.distill_from_epoch * self.steps_per_epoch

    def stage2(self, step: int | None = None) -> bool:
        return (self.current_step if step is None else step) >= self.distill_step

    def predict(self, batch: dict) -> dict:
        path = "distilled" if self.stage2() else "raw"
        return self.student(batch["left"], K=batch["K"], baseline=batch["baseline"], path=path)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        left, right = batch["left"], batch["right"]
        kw = dict(K=batch["K"], baseline=batch["baseline"])
        raw = self.student(left, path="raw", **kw)
        levels = self.student.levels(left.shape[-1], left.device)
        losses = volume_stage1_loss(self.cfg, raw, batch, levels, self.perceptual)
        if not self.stage2(step):
            return losses
        dist = self.student(left, path="distilled", flip_features=True, **kw)
        with torch.no_grad():  # masks select pixels; they carry no gradient
            warped_raw, _ = warp_horizontal(right, raw["disp"])
            warped_dist, _ = warp_horizontal(right, dist["disp"])
            m_p = photometric_mask(photometric_error(warped_raw, left),
                                   photometric_error(warped_dist, left), self.cfg.t1, self.cfg.t2)
            m_v = visible_mask(dist["disp"], self.cfg.visible_search) * edge_mask(dist["disp"])
        l_sd = self_distillation_loss(dist["depth"], raw["depth"], m_p * m_v)
        smooth_d = sdfa_smoothness(dist["disp"], left)
        losses.update(loss=losses["loss"] + self.cfg.w_sd * l_sd
                      + self.cfg.w_smooth_distilled * smooth_d,
                      sd=l_sd, smooth_distilled=smooth_d, mask_fraction=(m_p * m_v).mean())
        return losses

    def export_model_cfg(self):
        path = "distilled" if self.stage2() else "raw"
        return dataclasses.replace(self.student.cfg, inference_path=path)
