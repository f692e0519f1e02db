"""Classical stereo teacher: OpenCV StereoSGBM, dense by default.

No training. Batched over tensors: left/right (B, 3, H, W) RGB in [0, 1] -> disparity
(pixels), metric depth = fx * baseline / disparity (0 = invalid or beyond
[min_depth, max_depth]: never clamped to a fake value), a validity mask and a confidence in
[0, 1].

Two modes (``fill``):

- ``"none"`` (raw SGBM): pixels that pass a left-right consistency check keep their
  disparity with confidence exp(-|d_L(x) - d_R(x - d_L(x))|); all others are holes. With
  ``pad_border=False`` this is the matcher as it was before the dense mode existed: the left
  ``num_disparities`` columns have no match, since their partner lies outside the right image.
- ``"wls"`` (dense, the default): the pair is padded on the left by ``num_disparities``
  columns (edge-replicated) so the left border can be matched, the left-right check is run,
  and every hole is filled by OpenCV's weighted-least-squares disparity filter
  (``cv2.ximgproc``, edge-aware, guided by the left image). Consistent pixels keep their raw
  SGBM disparity (WLS smooths away detail); filled pixels get the filter's normalised
  support as confidence (its fast global smoother applied to the matcher's confidence map),
  scaled by ``fill_confidence``, so a student can trust them less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import cv2
import numpy as np
import torch

from depth_kd_core.errors import ConfigError
from depth_kd_core.models.base import DepthModel, ModelCfg
from depth_kd_core.models.registry import register_model

_SGBM_MODES = {"sgbm": cv2.STEREO_SGBM_MODE_SGBM, "hh": cv2.STEREO_SGBM_MODE_HH,
               "3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY}
_DISP_SCALE = 16.0  # OpenCV returns fixed-point disparities with 4 fractional bits


@dataclass
class SgbmCfg(ModelCfg):
    """StereoSGBM parameters (OpenCV names). p1/p2 = 0 picks 8*3*b^2 and 32*3*b^2.

    Attributes (besides OpenCV's):
        fill: "wls" fills holes (dense teacher), "none" leaves them (raw SGBM).
        pad_border: pad the pair on the left so the left border gets matched.
        lr_check, lr_tolerance_px: left-right consistency check and its tolerance.
        wls_lambda, wls_sigma_color: the WLS filter's smoothness and edge sensitivity
            (measured on the synthetic rig: 2000 / 1.0 fills holes better than OpenCV's
            8000 / 1.5 tutorial values).
        fill_confidence: the largest confidence a filled pixel can get.
    """

    classical: ClassVar[bool] = True
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
    fill: Literal["wls", "none"] = "wls"
    pad_border: bool = True
    lr_check: bool = True
    lr_tolerance_px: float = 1.0
    wls_lambda: float = 2000.0
    wls_sigma_color: float = 1.0
    fill_confidence: float = 0.5
    baseline_m: float = 0.54  # used when the call gives no baseline
    focal_px: float = 721.54  # used when the call gives no K

    def validate(self) -> None:
        super().validate()
        if self.num_disparities <= 0 or self.num_disparities % 16:
            raise ConfigError(f"sgbm_teacher: num_disparities must be a positive multiple of "
                              f"16, got {self.num_disparities}")
        if self.fill == "wls" and not self.lr_check:
            raise ConfigError("sgbm_teacher: fill=wls needs lr_check=true (the filter keeps "
                              "the consistent pixels and fills the rest)")
        if not 0.0 <= self.fill_confidence <= 1.0:
            raise ConfigError(f"sgbm_teacher: fill_confidence must be in [0, 1], got "
                              f"{self.fill_confidence}")


def make_matcher(cfg: SgbmCfg) -> cv2.StereoSGBM:
    b = cfg.block_size
    return cv2.StereoSGBM_create(
        minDisparity=cfg.min_disparity, numDisparities=cfg.num_disparities, blockSize=b,
        P1=cfg.p1 or 8 * 3 * b * b, P2=cfg.p2 or 32 * 3 * b * b,
        disp12MaxDiff=cfg.disp12_max_diff, preFilterCap=cfg.pre_filter_cap,
        uniquenessRatio=cfg.uniqueness_ratio, speckleWindowSize=cfg.speckle_window,
        speckleRange=cfg.speckle_range, mode=_SGBM_MODES[cfg.mode])


def lr_consistency(disp_l: np.ndarray, disp_r: np.ndarray, tolerance_px: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Left disparity vs the right view's disparity at x - d_L(x), both H x W pixels (> 0).

    Returns (consistent mask, confidence exp(-|d_L - d_R|) where consistent, else 0).
    """
    H, W = disp_l.shape
    x_r = np.clip(np.round(np.arange(W)[None, :] - disp_l).astype(np.int64), 0, W - 1)
    d_r = disp_r[np.arange(H)[:, None], x_r]
    diff = np.abs(disp_l - d_r)
    ok = (disp_l > 0) & (d_r > 0) & (diff <= tolerance_px)
    return ok, np.where(ok, np.exp(-diff), 0.0).astype(np.float32)


def check_width(cfg: SgbmCfg, width: int) -> None:
    if cfg.num_disparities >= width:
        raise ValueError(f"sgbm_teacher: num_disparities ({cfg.num_disparities}) must be "
                         f"smaller than the image width ({width} px); lower "
                         f"model.num_disparities")


def sgbm_disparity(left: np.ndarray, right: np.ndarray, cfg: SgbmCfg
                   ) -> tuple[np.ndarray, np.ndarray]:
    """H x W x 3 uint8 images -> (disparity H x W float32 px, 0 = invalid; confidence [0, 1])."""
    check_width(cfg, left.shape[1])
    pad = cfg.num_disparities if cfg.pad_border else 0
    if pad:
        left = cv2.copyMakeBorder(left, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        right = cv2.copyMakeBorder(right, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
    matcher = make_matcher(cfg)
    raw_l = matcher.compute(left, right)
    disp = raw_l.astype(np.float32) / _DISP_SCALE
    disp[disp <= max(cfg.min_disparity, 0)] = 0.0
    confidence = (disp > 0).astype(np.float32)
    if cfg.lr_check:
        right_matcher = cv2.ximgproc.createRightMatcher(matcher)
        raw_r = right_matcher.compute(right, left)  # negative disparities of the right view
        ok, confidence = lr_consistency(disp, -raw_r.astype(np.float32) / _DISP_SCALE,
                                        cfg.lr_tolerance_px)
        if cfg.fill == "wls":
            disp, confidence = _wls_fill(matcher, raw_l, raw_r, left, disp, ok, confidence,
                                         cfg)
        else:
            disp = np.where(ok, disp, 0.0).astype(np.float32)
    return disp[:, pad:], confidence[:, pad:]


def _wls_fill(matcher, raw_l, raw_r, left, disp, ok, confidence, cfg: SgbmCfg):
    """Holes (not ``ok``) take the WLS-filtered disparity; consistent pixels keep theirs."""
    wls = cv2.ximgproc.createDisparityWLSFilter(matcher)
    wls.setLambda(cfg.wls_lambda)
    wls.setSigmaColor(cfg.wls_sigma_color)
    filtered = wls.filter(raw_l, left, disparity_map_right=raw_r).astype(np.float32)
    filtered /= _DISP_SCALE
    # the filter's own normalisation: smoothed confidence = how much matched support a
    # pixel's filled value rests on (0 far from any match, ~1 inside a matched region)
    support = cv2.ximgproc.fastGlobalSmootherFilter(
        left, wls.getConfidenceMap().astype(np.float32) / 255.0, cfg.wls_lambda,
        cfg.wls_sigma_color)
    fill_conf = cfg.fill_confidence * np.clip(support, 0.0, 1.0)
    filled = ~ok & (filtered > 0)
    disp = np.where(ok, disp, np.where(filled, filtered, 0.0)).astype(np.float32)
    confidence = np.where(ok, confidence, np.where(filled, fill_conf, 0.0)).astype(np.float32)
    return disp, confidence


def _to_u8_hwc(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) RGB in [0, 1] -> B x H x W x 3 uint8 (what OpenCV matches)."""
    return (images.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


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
            raise ValueError(f"sgbm_teacher: left {tuple(left.shape)} != right "
                             f"{tuple(right.shape)}")
        lefts, rights = _to_u8_hwc(left), _to_u8_hwc(right)
        disps, confs = zip(*(sgbm_disparity(l_img, r_img, self.cfg)
                             for l_img, r_img in zip(lefts, rights)))
        disp = torch.from_numpy(np.stack(disps)).unsqueeze(1).to(left.device)
        conf = torch.from_numpy(np.stack(confs)).unsqueeze(1).to(left.device)
        B = left.shape[0]
        fx = K[:, 0, 0] if K is not None else torch.full((B,), self.cfg.focal_px)
        b = baseline if baseline is not None else torch.full((B,), self.cfg.baseline_m)
        fb = (fx.to(left) * b.to(left)).view(B, 1, 1, 1)
        depth = fb / disp.clamp_min(1e-6)
        valid = (disp > 0) & (depth >= self.cfg.min_depth) & (depth <= self.cfg.max_depth)
        zero = torch.zeros_like(disp)
        return {"depth": torch.where(valid, depth, zero), "disp": torch.where(valid, disp, zero),
                "valid": valid.float(), "confidence": torch.where(valid, conf, zero)}


@register_model("sgbm_teacher", SgbmCfg)
def sgbm_teacher(cfg: SgbmCfg) -> SgbmTeacher:
    return SgbmTeacher(cfg)
