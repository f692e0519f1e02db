"""16-bit depth PNGs in KITTI's encoding: metres x 256, 0 = no depth (devkit io_depth.h).

KITTI's ground truth and annotated depth, the synthetic world's KITTI tree and precomputed
teacher depth are all stored this way.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from depth_kd_core.errors import DataError
from depth_kd_core.fileio import atomic_write_bytes

KITTI_DEPTH_SCALE = 256.0  # devkit io_depth.h: depth [m] = png value / 256, 0 = invalid


def read_depth_png(path: str | Path) -> np.ndarray:
    """KITTI 16-bit depth PNG -> H x W float32 metres (value / 256, 0 = invalid)."""
    path = Path(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"depth PNG {path} is missing or not a readable image")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DataError(f"depth PNG {path} is {raw.dtype} with shape {raw.shape}; expected a "
                        f"single-channel 16-bit PNG (KITTI depth, value/256 metres)")
    return raw.astype(np.float32) / np.float32(KITTI_DEPTH_SCALE)


def write_depth_png(path: str | Path, depth: np.ndarray) -> None:
    """Write H x W metres as a KITTI 16-bit PNG atomically (devkit: max(d·256, 1), 0 invalid)."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    value = np.zeros(depth.shape, dtype=np.uint16)
    value[valid] = np.clip(depth[valid] * KITTI_DEPTH_SCALE, 1, np.iinfo(np.uint16).max)
    ok, buf = cv2.imencode(".png", value)
    if not ok:
        raise DataError(f"could not encode depth PNG for {path}")
    atomic_write_bytes(path, buf.tobytes())
