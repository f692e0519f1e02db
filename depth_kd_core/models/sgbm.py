"""Classical stereo teacher: OpenCV StereoSGBM with a left-right consistency check.

No training. Batched over tensors: left/right (B, 3, H, W) RGB in [0, 1] -> disparity
(pixels), metric depth = fx * baseline / disparity (0 where invalid), a validity mask and a
confidence in [0, 1] from the left-right check (exp(-|d_L(x) - d_R(x - d_L(x))|)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from depth_kd_core.models.base import DepthModel, ModelCfg
from depth_kd_core.models.registry import register_model

_SGBM_MODES = {"sgbm": cv2.STEREO_SGBM_MODE_SGBM, "hh": cv2.STEREO_SGBM_MODE_HH,
               "3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY}


@dataclass
class SgbmCfg(ModelCfg):
    """StereoSGBM parameters (OpenCV names). p1/p2 = 0 picks 8*3*b^2 and 32*3*b^2."""

    stereo_input: bool = True
    size_multiple: int = 1
    num_disparities: int = 64  # multiple of 16; the largest disparity searched, pixels
    min_disparity: int = 0
    block_size: int = 5
    p1: int = 0
    p2: int = 0
    uniqueness_ratio: int = 10
    speckle_window: int = 100
    speckle_range: int = 2
    disp12_max_diff: int = -1  # OpenCV's own LR check off: ours gives a confidence instead
    pre_filter_cap: int = 63
    mode: Literal["sgbm", "hh", "3way"] = "3way"
    lr_check: bool = True
    lr_tolerance_px: float = 1.0
    baseline_m: float = 0.54  # used when the call gives no baseline
    focal_px: float = 721.54  # used when the call gives no K

    def validate(self) -> None:
        super().validate()
        if self.num_disparities <= 0 or self.num_disparities % 16:
            from depth_kd_core.errors import ConfigError

            raise ConfigError(f"sgbm_teacher: num_disparities must be a positive multiple of "
                              f"16, got {self.num_disparities}")


def make_matcher(cfg: SgbmCfg) -> cv2.StereoSGBM:
    b = cfg.block_size
    return cv2.StereoSGBM_create(
        minDisparity=cfg.min_disparity, numDisparities=cfg.num_disparities, blockSize=b,
        P1=cfg.p1 or 8 * 3 * b * b, P2=cfg.p2 or 32 * 3 * b * b,
        disp12MaxDiff=cfg.disp12_max_diff, preFilterCap=cfg.pre_filter_cap,
        uniquenessRatio=cfg.uniqueness_ratio, speckleWindowSize=cfg.speckle_window,
        speckleRange=cfg.speckle_range, mode=_SGBM_MODES[cfg.mode])


def sgbm_disparity(left: np.ndarray, right: np.ndarray, cfg: SgbmCfg
                   ) -> tuple[np.ndarray, np.ndarray]:
    """H x W x 3 uint8 images -> (disparity H x W float32 px, 0 = invalid; confidence [0, 1])."""
    matcher = make_matcher(cfg)
    disp = matcher.compute(left, right).astype(np.float32) / 16.0
    valid = disp > max(cfg.min_disparity, 0)
    disp[~valid] = 0.0
    confidence = valid.astype(np.float32)
    if cfg.lr_check:
        # right-view disparity by matching the mirrored pair; then d_R(x - d_L(x)) vs d_L(x)
        disp_r = matcher.compute(np.ascontiguousarray(right[:, ::-1]),
                                 np.ascontiguousarray(left[:, ::-1])).astype(np.float32) / 16.0
        disp_r = disp_r[:, ::-1]
        H, W = disp.shape
        x_r = np.clip(np.round(np.arange(W)[None, :] - disp).astype(np.int64), 0, W - 1)
        d_r = disp_r[np.arange(H)[:, None], x_r]
        diff = np.abs(disp - d_r)
        ok = valid & (d_r > 0) & (diff <= cfg.lr_tolerance_px)
        confidence = np.where(ok, np.exp(-diff), 0.0).astype(np.float32)
        disp[~ok] = 0.0
    return disp, confidence


class SgbmTeacher(DepthModel):
    """forward(left, right, K=None, baseline=None) -> depth, disp, valid, confidence."""

    def __init__(self, cfg: SgbmCfg) -> None:
        super().__init__(cfg)

    @torch.no_grad()
    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, *,
                K: torch.Tensor | None = None, baseline: torch.Tensor | None = None,
                **context) -> dict:
        if right is None:
            raise ValueError("sgbm_teacher needs the right image: sgbm_teacher(left, right)")
        self.check_input(left, "left")
        self.check_input(right, "right")
        if left.shape != right.shape:
            raise ValueError(f"sgbm_teacher: left {tuple(left.shape)} != right {tuple(right.shape)}")
        to_u8 = lambda t: (t.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1)  # noqa: E731
        lefts, rights = to_u8(left).cpu().numpy(), to_u8(right).cpu().numpy()
        disps, confs = zip(*(sgbm_disparity(l_img, r_img, self.cfg)
                             for l_img, r_img in zip(lefts, rights)))
        disp = torch.from_numpy(np.stack(disps)).unsqueeze(1).to(left.device)
        conf = torch.from_numpy(np.stack(confs)).unsqueeze(1).to(left.device)
        B = left.shape[0]
        fx = K[:, 0, 0] if K is not None else torch.full((B,), self.cfg.focal_px)
        b = baseline if baseline is not None else torch.full((B,), self.cfg.baseline_m)
        fb = (fx.to(left) * b.to(left)).view(B, 1, 1, 1)
        valid = disp > 0
        depth = torch.where(valid, fb / disp.clamp_min(1e-6), torch.zeros_like(disp))
        return {"depth": depth.clamp(max=self.cfg.max_depth) * valid, "disp": disp,
                "valid": valid.float(), "confidence": conf}


@register_model("sgbm_teacher", SgbmCfg)
def sgbm_teacher(cfg: SgbmCfg) -> SgbmTeacher:
    return SgbmTeacher(cfg)
