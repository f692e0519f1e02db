"""Trivial depth predictors that never look at the image, for every report to stand beside.

A trained student is only worth deploying if it beats what a fixed depth map already gets:

- the **no-image prior**: the per-pixel mean of log-depth over the training set's ground truth
  (a driving camera sees road below and sky above, so this map alone scores well);
- a **constant**: one depth everywhere, the geometric mean of all training depths.

Both are fitted on the training split and scored through the same evaluation loop as a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from depth_kd_core.errors import DepthKDError
from depth_kd_core.metrics import MAX_DEPTH_M, MIN_DEPTH_M


@dataclass
class DepthPrior:
    """A fitted no-image prior.

    Attributes:
        log_depth: H x W float64, mean natural-log depth per pixel (log metres), at the
            training items' resolution; rows no ground truth ever reached copy the nearest
            row that has it (LiDAR sees nothing above its top beam).
        constant_m: geometric mean of every valid training depth, metres.
        images: how many training images were averaged.
    """

    log_depth: np.ndarray
    constant_m: float
    images: int

    def depth(self, height: int, width: int, constant: bool = False) -> torch.Tensor:
        """(1, 1, height, width) metres: the prior map resized (in log space) or the constant."""
        if constant:
            return torch.full((1, 1, height, width), self.constant_m)
        log = torch.from_numpy(self.log_depth).float()[None, None]
        if log.shape[-2:] != (height, width):
            log = F.interpolate(log, size=(height, width), mode="bilinear", align_corners=False)
        return log.exp()


def fit_depth_prior(dataset, max_images: int = 200, progress: bool = True,
                    min_depth: float = MIN_DEPTH_M, max_depth: float = MAX_DEPTH_M
                    ) -> DepthPrior:
    """Average log ``depth_gt`` per pixel over up to ``max_images`` items of ``dataset``.

    Items must share one resolution (training datasets do). Raises DepthKDError when the
    dataset has no ground truth.
    """
    n = min(len(dataset), max_images) if max_images else len(dataset)
    if n == 0:
        raise DepthKDError("no-image prior: the training set is empty")
    step = max(len(dataset) // n, 1)  # spread the images over the whole set
    total = count = None
    used = 0
    for i in tqdm(range(0, step * n, step), desc="no-image prior", disable=not progress):
        item = dataset[i]
        if "depth_gt" not in item:
            raise DepthKDError("no-image prior: the training data has no ground truth "
                               "(depth_gt); give the source a depth topic or LiDAR")
        gt = item["depth_gt"].reshape(item["depth_gt"].shape[-2:]).double().numpy()
        valid = (gt > min_depth) & (gt < max_depth)
        if total is None:
            total, count = np.zeros_like(gt), np.zeros_like(gt)
        if gt.shape != total.shape:
            raise DepthKDError(f"no-image prior: training item {i} is {gt.shape}, earlier "
                               f"ones {total.shape}; the prior needs one resolution")
        total += np.where(valid, np.log(np.where(valid, gt, 1.0)), 0.0)
        count += valid
        used += 1
    if not count.any():
        raise DepthKDError("no-image prior: no valid ground-truth pixel in the training set")
    constant = float(np.exp(total.sum() / count.sum()))
    log_depth = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return DepthPrior(_fill_rows(log_depth, np.log(constant)), constant, used)


def _fill_rows(log_depth: np.ndarray, fallback: float) -> np.ndarray:
    """Fill NaN pixels from the nearest row of the same column that has a value."""
    out = log_depth.copy()
    H, W = out.shape
    for x in range(W):
        col = out[:, x]
        have = np.flatnonzero(~np.isnan(col))
        if have.size == 0:
            col[:] = fallback
            continue
        rows = np.arange(H)
        nearest = have[np.abs(rows[:, None] - have[None, :]).argmin(axis=1)]
        col[:] = col[nearest]
    return out


class PriorPredictor:
    """The prior (or the constant) behind the evaluation loop's predictor interface."""

    def __init__(self, prior: DepthPrior, constant: bool = False) -> None:
        self.prior, self.constant = prior, constant
        self.cfg = _PriorCfg()

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        B, _, H, W = batch["left"].shape
        return {"depth": self.prior.depth(H, W, self.constant).expand(B, 1, H, W).clone()}


@dataclass
class _PriorCfg:
    """What the evaluation loop reads of a model config."""

    name: str = "no_image_prior"
    output_kind: str = "metric_depth"
    stereo_input: bool = False
