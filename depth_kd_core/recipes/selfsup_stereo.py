"""Self-supervised training from stereo pairs (no ground truth, no teacher).

- ``selfsup_stereo``: the no-KD twin of SDFA-Net, and a generic stereo-trained student.
  Students with a disparity volume (sdfa_net) learn by rebuilding the right image from the
  left volume (FAL-Net/SDFA eq. 7 and 14, raw path, + 0.0008 smoothness eq. 16-17); other
  students by warping the right image into the left view with their depth (Monodepth2 "S").
- ``stereo_selfsup``: a stereo teacher trained the Monodepth2 way, for bags without LiDAR.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from depth_kd_core.losses.photometric import reconstruction_loss
from depth_kd_core.losses.sdfa import SDFA_PERCEPTUAL_WEIGHT, SDFA_W_SMOOTH_RAW
from depth_kd_core.losses.smoothness import sdfa_smoothness
from depth_kd_core.recipes.base import Recipe, RecipeCfg
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.selfsup import stereo_warp_loss, synthesized_right


@dataclass
class SelfsupStereoCfg(RecipeCfg):
    """Stereo self-supervision recipe settings.

    Attributes: automask: Monodepth2's auto-masking, off by default here: it exists for video
    (static frames, objects moving with the camera); for a rectified pair the unwarped right
    image is never the right explanation and, early on, would mask out every pixel.
    perceptual: VGG19 weights for SDFA's perceptual term ("imagenet" downloads them, "random"
    is for offline tests, "none" drops the term); smooth_weight for the volume path (SDFA:
    0.0008).
    """

    automask: bool = False
    perceptual: str = "none"
    perceptual_weight: float = SDFA_PERCEPTUAL_WEIGHT
    smooth_weight: float = SDFA_W_SMOOTH_RAW


def build_perceptual(cfg: SelfsupStereoCfg):
    """VGG19 feature extractor for SDFA's perceptual term, or None."""
    if cfg.perceptual == "none" or cfg.perceptual_weight == 0:
        return None
    from depth_kd_core.losses.photometric import VGGPerceptual

    return VGGPerceptual(None if cfg.perceptual == "random" else cfg.perceptual)


def volume_stage1_loss(cfg: SelfsupStereoCfg, out: dict, batch: dict, levels: torch.Tensor,
                       perceptual) -> dict:
    """SDFA stage 1 on the raw path: L_rec (eq. 14) + w * L_smo^raw (eq. 16-17)."""
    rec = reconstruction_loss(synthesized_right(out["disp_volume"], batch, levels),
                              batch["right"], perceptual, cfg.perceptual_weight)
    smooth = sdfa_smoothness(out["disp"], batch["left"])
    return {"loss": rec + cfg.smooth_weight * smooth, "rec": rec, "smooth_raw": smooth}


@register_recipe("selfsup_stereo", SelfsupStereoCfg)
class SelfsupStereo(Recipe):
    DEFAULT_STUDENT = "sdfa_net"
    NEEDS = frozenset({"right", "baseline"})

    def __init__(self, cfg, model_cfg_=None, teacher_cfg=None) -> None:
        super().__init__(cfg, model_cfg_, teacher_cfg)
        self.perceptual = build_perceptual(cfg)

    def predict(self, batch: dict) -> dict:
        kwargs = {"path": "raw"} if self.student.cfg.output_kind == "disparity_volume" else {}
        return self.student(batch["left"], K=batch["K"], baseline=batch["baseline"], **kwargs)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        out = self.predict(batch)
        if "disp_volume" in out:
            levels = self.student.levels(batch["left"].shape[-1], batch["left"].device)
            return volume_stage1_loss(self.cfg, out, batch, levels, self.perceptual)
        return stereo_warp_loss(out, batch, self.student.cfg, self.cfg.automask)

    def export_model_cfg(self):
        cfg = self.student.cfg
        if cfg.output_kind == "disparity_volume":
            return dataclasses.replace(cfg, inference_path="raw")  # no distilled head trained
        return dataclasses.replace(cfg, output_kind="metric_depth")  # true baseline used


@register_recipe("stereo_selfsup", SelfsupStereoCfg)
class StereoSelfsup(Recipe):
    """A stereo teacher (left + right in) trained by warping the right image (no GT)."""

    DEFAULT_STUDENT = "stereo_corr_teacher"
    NEEDS = frozenset({"right", "baseline"})

    def predict(self, batch: dict) -> dict:
        return self.student(batch["left"], batch["right"], K=batch["K"],
                            baseline=batch["baseline"])

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        return stereo_warp_loss(self.predict(batch), batch, self.student.cfg, self.cfg.automask)
