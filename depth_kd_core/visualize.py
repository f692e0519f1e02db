"""Colour maps and image panels for depth, uncertainty and labels.

For TensorBoard, evaluation grids, ROS ``depth/colorized`` and the demo. One place, no training
or ROS imports.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch

from depth_kd_core.depth_maps import all_positive_finite
from depth_kd_core.errors import ConfigError

COLORMAPS = {"turbo": cv2.COLORMAP_TURBO, "jet": cv2.COLORMAP_JET,
             "viridis": cv2.COLORMAP_VIRIDIS, "inferno": cv2.COLORMAP_INFERNO,
             "magma": cv2.COLORMAP_MAGMA, "plasma": cv2.COLORMAP_PLASMA,
             "bone": cv2.COLORMAP_BONE, "rainbow": cv2.COLORMAP_RAINBOW}
DEPTH_COLOR_RANGE_M = (2.0, 80.0)  # near end saturates at 2 m, far end at the KITTI cap


def colorize(value: np.ndarray, vmin: float, vmax: float, colormap: str = "turbo",
             invalid: np.ndarray | None = None) -> np.ndarray:
    """H x W values -> H x W x 3 uint8 RGB over [vmin, vmax]; ``invalid`` and NaN black."""
    if colormap not in COLORMAPS:
        raise ConfigError(f"colormap {colormap!r} is unknown; choose one of "
                          f"{', '.join(COLORMAPS)}")
    v = np.nan_to_num(np.asarray(value, dtype=np.float32), nan=vmin)
    norm = np.clip((v - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    rgb = cv2.applyColorMap((norm * 255).astype(np.uint8), COLORMAPS[colormap])[..., ::-1].copy()
    bad = ~np.isfinite(value) if invalid is None else (invalid | ~np.isfinite(value))
    rgb[bad] = 0
    return rgb


def colorize_depth(depth: np.ndarray, min_depth: float = DEPTH_COLOR_RANGE_M[0],
                   max_depth: float = DEPTH_COLOR_RANGE_M[1], colormap: str = "turbo",
                   channels: Literal["rgb", "bgr"] = "rgb") -> np.ndarray:
    """(H, W) metres (NaN or <= 0 invalid) -> (H, W, 3) uint8 over a fixed range.

    Inverse depth is mapped linearly between 1/max_depth and 1/min_depth (near = the hot end)
    so nearby structure gets most of the colour range; invalid pixels are black. Both channel
    orders have callers: "rgb" for image panels (TensorBoard, evaluation grids), "bgr" for
    bgr8 messages, in OpenCV's own order (no reversal copy on the nodes' per-frame path).
    """
    if not 0 < min_depth < max_depth:
        raise ConfigError(f"colour range needs 0 < min_depth < max_depth, got {min_depth}, "
                          f"{max_depth}")
    if colormap not in COLORMAPS:
        raise ConfigError(f"colormap {colormap!r} is unknown; choose one of "
                          f"{', '.join(COLORMAPS)}")
    if channels not in ("rgb", "bgr"):
        raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    d = np.asarray(depth, dtype=np.float32)
    valid = None if all_positive_finite(d) else (d > 0) & (d < np.inf)
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # colorize's float32 steps (inverse depth, normalise, clip, x255), in place; invalid
        # pixels give junk indices that are blacked out below
        norm = np.divide(np.float32(1.0), d)
        norm -= np.float32(lo)
        norm /= np.float32(max(hi - lo, 1e-9))
        np.clip(norm, 0, 1, out=norm)
        norm *= np.float32(255)
        index = norm.astype(np.uint8)
    bgr = cv2.applyColorMap(index, COLORMAPS[colormap])
    if valid is not None:
        np.copyto(bgr, 0, where=~valid[..., None])
    return bgr if channels == "bgr" else np.ascontiguousarray(bgr[..., ::-1])


def to_rgb_u8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8 RGB."""
    return (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(
        np.uint8)


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
    """Stack H x W x 3 uint8 panels vertically (all the same width)."""
    return np.concatenate(rows, axis=0)
