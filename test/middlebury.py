"""Middlebury 2014 stereo pairs for tests: PFM disparity reader and pair loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_kd_core.errors import DataError


def read_pfm(path: str | Path) -> np.ndarray:
    """PFM file -> H x W (or H x W x 3) float32, rows top-down (PFM stores them bottom-up)."""
    path = Path(path)
    with open(path, "rb") as f:
        header = f.readline().decode("latin-1").strip()
        if header not in ("Pf", "PF"):
            raise DataError(f"{path}: not a PFM file (header {header!r}, expected 'Pf' or 'PF')")
        dims = f.readline().decode("latin-1").split()
        width, height = int(dims[0]), int(dims[1])
        scale = float(f.readline().decode("latin-1").strip())
        channels = 3 if header == "PF" else 1
        dtype = "<f4" if scale < 0 else ">f4"
        data = np.frombuffer(f.read(), dtype=dtype)
    expected = width * height * channels
    if data.size != expected:
        raise DataError(f"{path}: truncated PFM, {data.size} values for {width}x{height}x"
                        f"{channels}")
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


@dataclass
class MiddleburyPair:
    """Rectified pair with ground truth.

    Images H x W x 3 uint8 RGB; disparity in pixels (NaN = unknown); ``nonoccluded`` boolean;
    depth_mm = baseline_mm * f / (disp + doffs).
    """

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    nonoccluded: np.ndarray
    focal_px: float
    baseline_mm: float
    doffs: float


def load_middlebury(folder: str | Path) -> MiddleburyPair:
    """Read im0.png, im1.png, disp0GT.pfm, mask0nocc.png and calib.txt from ``folder``."""
    folder = Path(folder)
    calib = {}
    for line in (folder / "calib.txt").read_text().splitlines():
        key, _, value = line.partition("=")
        calib[key.strip()] = value.strip()
    focal = float(calib["cam0"].strip("[]").split()[0])
    disp = read_pfm(folder / "disp0GT.pfm")
    disp[~np.isfinite(disp)] = np.nan
    read = lambda name: cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)  # noqa: E731
    mask = cv2.imread(str(folder / "mask0nocc.png"), cv2.IMREAD_GRAYSCALE)
    return MiddleburyPair(read("im0.png"), read("im1.png"), disp, mask == 255, focal,
                          float(calib["baseline"]), float(calib["doffs"]))
