"""Camera geometry: intrinsics under resize / crop / flip, and image and depth resampling.

The one place that knows how a resize moves pixels and focal lengths; augmentations
(``transforms.py``), datasets, the calibration model, inference and the ROS nodes import it.

Pixel convention: pixel centres at integer coordinates (``cx = (W - 1) / 2`` is the image
centre). Resizing by ``s`` maps ``u -> (u + 0.5) s - 0.5`` (what OpenCV's resize does), so
``fx' = s fx`` and ``cx' = (cx + 0.5) s - 0.5``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


# ------------------------------------------------------------------------- intrinsics


def scale_intrinsics(K: torch.Tensor | np.ndarray, sx: float,
                     sy: float) -> torch.Tensor | np.ndarray:
    """Intrinsics after resizing the image by ``sx`` horizontally and ``sy`` vertically."""
    K = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def crop_intrinsics(K: torch.Tensor | np.ndarray, x0: int, y0: int) -> torch.Tensor | np.ndarray:
    """Intrinsics after cropping with top-left corner (x0, y0)."""
    K = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    K[0, 2] -= x0
    K[1, 2] -= y0
    return K


def flip_intrinsics(K: torch.Tensor | np.ndarray, width: int) -> torch.Tensor | np.ndarray:
    """Intrinsics of the horizontally mirrored image (u -> W - 1 - u)."""
    K = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    K[0, 2] = width - 1 - K[0, 2]
    K[0, 1] = -K[0, 1]
    return K


# ------------------------------------------------------------------ numpy resampling


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W (x C) image -> height x width; area filter when shrinking, bilinear otherwise."""
    if img.shape[:2] == (height, width):
        return img
    shrink = height <= img.shape[0] and width <= img.shape[1]
    return cv2.resize(img, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each output pixel (centre-aligned nearest neighbour)."""
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize_nearest(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-aligned nearest-neighbour resize of an H x W map of any dtype (labels)."""
    return x[_nearest_index(height, x.shape[0])[:, None], _nearest_index(width, x.shape[1])]


def scatter_min(values: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:
    """H x W float32 map with the smallest value landing on each pixel, 0 where none lands."""
    out = np.zeros(shape, dtype=np.float32)
    order = np.argsort(values, kind="stable")
    lin = (rows * shape[1] + cols)[order]
    uniq, first = np.unique(lin, return_index=True)  # first hit in ascending order = minimum
    out.reshape(-1)[uniq] = values[order][first]
    return out


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an H x W depth map (metres, 0 = invalid) without inventing in-between depths.

    Shrinking scatters every valid pixel to the output pixel holding its centre, closest
    point wins (sparse LiDAR keeps its returns, dense maps keep foreground edges sharp);
    enlarging uses nearest neighbour.
    """
    H, W = depth.shape
    if (H, W) == (height, width):
        return depth
    if height > H or width > W:
        return resize_nearest(depth, height, width)
    rows, cols = np.nonzero(depth > 0)
    tr = np.minimum(((rows + 0.5) * (height / H)).astype(np.int64), height - 1)
    tc = np.minimum(((cols + 0.5) * (width / W)).astype(np.int64), width - 1)
    return scatter_min(depth[rows, cols].astype(np.float32), tr, tc, (height, width))


def warp_depth_to_right(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Depth of the left view (H x W metres) seen from the right camera of a rectified pair.

    Each valid pixel moves left by its disparity ``fx * baseline / z`` (closest wins; the
    depth value is unchanged because the cameras differ by a pure x translation). Pixels the
    left view cannot see stay 0 (invalid).
    """
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float32)
    target = np.round(cols - fx * baseline / z).astype(np.int64)
    keep = (target >= 0) & (target < depth.shape[1])
    return scatter_min(z[keep], rows[keep], target[keep], depth.shape)
