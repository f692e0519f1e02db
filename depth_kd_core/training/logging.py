"""TensorBoard scalars and image grids, and colour maps for depth and uncertainty."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch


def colorize(value: np.ndarray, vmin: float, vmax: float, cmap: int = cv2.COLORMAP_TURBO,
             invalid: np.ndarray | None = None) -> np.ndarray:
    """H x W values -> H x W x 3 uint8 RGB; ``invalid`` pixels (and NaN) black."""
    v = np.nan_to_num(value.astype(np.float32), nan=vmin)
    norm = np.clip((v - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    rgb = cv2.applyColorMap((norm * 255).astype(np.uint8), cmap)[..., ::-1].copy()
    bad = ~np.isfinite(value) if invalid is None else (invalid | ~np.isfinite(value))
    rgb[bad] = 0
    return rgb


def colorize_depth(depth: np.ndarray, max_depth: float = 80.0) -> np.ndarray:
    """Depth (metres, 0/NaN = invalid) -> RGB via inverse depth (near = red, far = blue)."""
    valid = np.isfinite(depth) & (depth > 0)
    inv = np.where(valid, 1.0 / np.maximum(depth, 1e-3), 0.0)
    return colorize(inv, 1.0 / max_depth, 0.5, invalid=~valid)


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
    """Stack H x W x 3 uint8 panels vertically (all the same width)."""
    return np.concatenate(rows, axis=0)


def to_rgb_u8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> H x W x 3 uint8."""
    return (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)


class Logger:
    """TensorBoard writer on the main process only (no-op elsewhere or when disabled)."""

    def __init__(self, log_dir: str | Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))

    def scalars(self, prefix: str, values: dict, step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", float(v), step)

    def image(self, tag: str, rgb: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, rgb, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
