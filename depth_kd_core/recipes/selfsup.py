"""Self-supervision shared by several recipes: stereo and video view synthesis losses.

These compose geometry layers and photometric losses (Monodepth2, METHODS §6; FAL-Net /
SDFA volume synthesis, METHODS §1.4) into the per-step terms the recipes add up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depth_kd_core.layers.disparity_volume import synthesize_right
from depth_kd_core.layers.geometry import backproject, disp_to_depth, project, warp_horizontal
from depth_kd_core.losses.photometric import min_reprojection_loss, photometric_error
from depth_kd_core.losses.smoothness import edge_aware_smoothness

MONODEPTH_SMOOTH_WEIGHT = 1e-3  # divided by 2^scale


def focal_baseline(batch: dict) -> torch.Tensor:
    """(B, 1, 1, 1) fx * baseline, pixel-metres (disparity = this / depth)."""
    return (batch["K"][:, 0, 0] * batch["baseline"]).view(-1, 1, 1, 1)


def _full_res_depths(out: dict, size: tuple[int, int], model_cfg) -> list[torch.Tensor]:
    """Depth at full resolution per scale: Monodepth2 upsamples each scale's disparity."""
    if "sigmoid_disp" not in out:
        return [out["depth"]]
    return [disp_to_depth(F.interpolate(d, size=size, mode="bilinear", align_corners=False),
                          model_cfg.min_depth, model_cfg.max_depth) for d in out["sigmoid_disp"]]


def _smoothness(out: dict, image: torch.Tensor, scale: int) -> torch.Tensor:
    """Monodepth2's smoothness at one scale on the mean-normalised disparity."""
    if "sigmoid_disp" in out:
        disp = out["sigmoid_disp"][scale]
    else:
        disp = 1.0 / out["depth"].clamp_min(1e-3)
    img = F.interpolate(image, size=disp.shape[-2:], mode="area") if disp.shape[-2:] != \
        image.shape[-2:] else image
    return edge_aware_smoothness(disp, img) * MONODEPTH_SMOOTH_WEIGHT / (2**scale)


def stereo_warp_loss(out: dict, batch: dict, model_cfg, automask: bool = True) -> dict:
    """Monodepth2 stereo ("S") loss: rebuild the left image from the right one.

    The predicted depth gives disparity = fx * B / depth with the batch's true baseline, so the
    result is metric. Returns {"loss", "photo", "smooth"}.
    """
    left, right = batch["left"], batch["right"]
    fb = focal_baseline(batch)
    identity = [photometric_error(right, left)] if automask else None
    photo, smooth = 0.0, 0.0
    depths = _full_res_depths(out, left.shape[-2:], model_cfg)
    for s, depth in enumerate(depths):
        warped, _ = warp_horizontal(right, fb / depth.clamp_min(1e-3))
        loss_s, _ = min_reprojection_loss([photometric_error(warped, left)], identity)
        photo = photo + loss_s
        smooth = smooth + _smoothness(out, left, s)
    n = len(depths)
    return {"loss": (photo + smooth) / n, "photo": photo / n, "smooth": smooth / n}


def video_warp_loss(out: dict, poses: list[torch.Tensor], sources: list[torch.Tensor],
                    batch: dict, model_cfg) -> dict:
    """Monodepth2 monocular ("M") loss with per-pixel minimum and auto-masking.

    ``poses[i]`` (B, 4, 4) maps target-camera points into the camera of ``sources[i]``.
    Returns {"loss", "photo", "smooth", "automask"} (automask: fraction of pixels kept).
    """
    target, K = batch["left"], batch["K"]
    H, W = target.shape[-2:]
    identity = [photometric_error(src, target) for src in sources]
    photo, smooth, kept = 0.0, 0.0, 0.0
    depths = _full_res_depths(out, (H, W), model_cfg)
    for s, depth in enumerate(depths):
        points = backproject(depth, K)
        errors = []
        for T, src in zip(poses, sources):
            grid = project(points, K, T, H, W)
            warped = F.grid_sample(src, grid, padding_mode="border", align_corners=True)
            errors.append(photometric_error(warped, target))
        loss_s, mask = min_reprojection_loss(errors, identity)
        photo, kept = photo + loss_s, kept + mask.mean()
        smooth = smooth + _smoothness(out, target, s)
    n = len(depths)
    return {"loss": (photo + smooth) / n, "photo": photo / n, "smooth": smooth / n,
            "automask": kept / n}


def synthesized_right(logits: torch.Tensor, batch: dict, levels: torch.Tensor) -> torch.Tensor:
    """SDFA/FAL-Net eq. 7: the right view rebuilt from the left disparity-logit volume."""
    return synthesize_right(logits, batch["left"], levels)
