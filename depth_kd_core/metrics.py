"""Depth metrics: the Eigen set and the KITTI-benchmark set, computed in one place.

Used by training validation, ``depth_kd_core.evaluate`` and the ROS stereo-comparison node.

Eigen et al. (METHODS.md §6), per image over valid pixels g (ground truth) and p (prediction):
    abs_rel = mean(|g - p| / g)            sq_rel   = mean((g - p)^2 / g)
    rmse    = sqrt(mean((g - p)^2))        rmse_log = sqrt(mean((ln g - ln p)^2))
    a_k     = mean(max(g/p, p/g) < 1.25^k), k = 1, 2, 3
KITTI depth-prediction devkit (METHODS.md §7), e = ln g - ln p:
    silog         = 100 * sqrt(mean(e^2) - mean(e)^2)
    kitti_abs_rel = 100 * mean(|g - p| / g)
    kitti_sq_rel  = 100 * mean((g - p)^2 / g^2)       (note g^2, unlike Eigen's sq_rel)
    irmse         = 1000 * sqrt(mean((1/g - 1/p)^2))  (1/km)
Batched inputs are scored per image and averaged over images, as both protocols do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

# Crops as fractions of the image size: rows [top, bottom), columns [left, right).
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # Garg et al. 2016
EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)  # Eigen et al. 2014
MIN_DEPTH_M = 1e-3
MAX_DEPTH_M = 80.0  # KITTI Eigen-split cap

METRIC_KEYS = (
    "abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3",
    "silog", "kitti_abs_rel", "kitti_sq_rel", "irmse",
)
HIGHER_IS_BETTER = frozenset({"a1", "a2", "a3"})  # accuracies; every other key is an error

Crop = Literal["garg", "eigen"] | None


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def crop_mask(height: int, width: int, crop: Crop) -> np.ndarray:
    """Boolean H x W mask of the evaluation crop (all True for ``crop=None``)."""
    mask = np.zeros((height, width), dtype=bool)
    if crop is None:
        mask[:] = True
        return mask
    fractions = {"garg": GARG_CROP, "eigen": EIGEN_CROP}.get(crop)
    if fractions is None:
        raise ValueError(f"crop must be None, 'garg' or 'eigen', got {crop!r}")
    top, bottom, left, right = fractions
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def valid_mask(gt: np.ndarray, *, min_depth: float = MIN_DEPTH_M, max_depth: float = MAX_DEPTH_M,
               crop: Crop = None) -> np.ndarray:
    """Pixels scored: gt in (min_depth, max_depth) and inside the crop. gt: H x W metres."""
    return (gt > min_depth) & (gt < max_depth) & crop_mask(*gt.shape[-2:], crop)


def _image_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """All metrics for 1-D arrays of matched valid predictions and ground truths (metres)."""
    ratio = np.maximum(g / p, p / g)
    diff = g - p
    log_diff = np.log(g) - np.log(p)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
        "silog": float(100.0 * np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0))),
        "kitti_abs_rel": float(100.0 * np.mean(np.abs(diff) / g)),
        "kitti_sq_rel": float(100.0 * np.mean(diff**2 / g**2)),
        "irmse": float(1000.0 * np.sqrt(np.mean((1.0 / g - 1.0 / p) ** 2))),
    }


def _squeeze_image(x: np.ndarray, name: str) -> np.ndarray:
    """H x W, or B x H x W from B x 1 x H x W / B x H x W."""
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected B x 1 x H x W, got shape {x.shape}")
        x = x[:, 0]
    if x.ndim not in (2, 3):
        raise ValueError(f"{name}: expected H x W or a batch of them, got shape {x.shape}")
    return x


def depth_metrics(pred, gt, *, min_depth: float = MIN_DEPTH_M, max_depth: float = MAX_DEPTH_M,
                  crop: Crop = None, median_scaling: bool = False) -> dict[str, float]:
    """Eigen and KITTI-benchmark metrics of ``pred`` against ``gt``.

    Args:
        pred: predicted depth, metres; H x W, B x H x W or B x 1 x H x W (numpy or torch).
        gt: ground-truth depth, metres, same shape; values outside (min_depth, max_depth)
            (0 included) are invalid.
        min_depth, max_depth: valid range of gt, and the clamp range of pred.
        crop: None, "garg" or "eigen" (fractions of the image size).
        median_scaling: scale each prediction by median(gt)/median(pred) before clamping.

    Returns:
        ``METRIC_KEYS`` -> value; for a batch, the mean over images that have valid pixels.

    Raises:
        ValueError: shapes differ, or no image has a valid ground-truth pixel.
    """
    pred_np, gt_np = _to_numpy(pred), _to_numpy(gt)
    if pred_np.shape != gt_np.shape:
        raise ValueError(f"pred shape {pred_np.shape} != gt shape {gt_np.shape}")
    pred_np = _squeeze_image(pred_np, "pred")
    gt_np = _squeeze_image(gt_np, "gt")
    if pred_np.ndim == 2:
        pred_np, gt_np = pred_np[None], gt_np[None]
    per_image = []
    for p_img, g_img in zip(pred_np, gt_np):
        mask = valid_mask(g_img, min_depth=min_depth, max_depth=max_depth, crop=crop)
        if not mask.any():
            continue
        p, g = p_img[mask], g_img[mask]
        if median_scaling:
            p = p * (np.median(g) / np.median(p))
        per_image.append(_image_metrics(np.clip(p, min_depth, max_depth), g))
    if not per_image:
        raise ValueError(
            f"no valid ground-truth pixels (gt in ({min_depth}, {max_depth}) m, crop={crop})"
        )
    return average_metrics(per_image)


def average_metrics(items: Iterable[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of per-image metric dicts."""
    items = list(items)
    if not items:
        raise ValueError("average_metrics: no metric dicts to average")
    return {k: float(np.mean([m[k] for m in items])) for k in items[0]}


class MetricAccumulator:
    """Running per-image average, for validation loops and online comparison.

    ``window`` keeps only the last N images (rolling metrics in the ROS comparison node).
    """

    def __init__(self, window: int | None = None, **metric_kwargs) -> None:
        self.window = window
        self.metric_kwargs = metric_kwargs
        self._items: list[dict[str, float]] = []

    def update(self, pred, gt) -> dict[str, float] | None:
        """Score one image or batch; returns its metrics, None if it has no valid pixels."""
        pred_np = _squeeze_image(_to_numpy(pred), "pred")
        gt_np = _squeeze_image(_to_numpy(gt), "gt")
        if pred_np.ndim == 2:
            pred_np, gt_np = pred_np[None], gt_np[None]
        last = None
        for p, g in zip(pred_np, gt_np):
            try:
                last = depth_metrics(p, g, **self.metric_kwargs)
            except ValueError:
                continue
            self._items.append(last)
        if self.window is not None:
            self._items = self._items[-self.window:]
        return last

    def __len__(self) -> int:
        return len(self._items)

    def compute(self) -> dict[str, float]:
        """Mean over accumulated images (ValueError if none)."""
        return average_metrics(self._items)


# --------------------------------------------------------------------------------------------
# Uncertainty quality (ADU UEM, TIE-KD DPM): rank correlation and sparsification
# --------------------------------------------------------------------------------------------

SPARSIFICATION_STEPS = 20  # remove 0 %, 5 %, ..., 95 % of the pixels


def spearman(x, y) -> float:
    """Spearman rank correlation of two 1-D samples (ties broken by order; NaN if < 2 values)."""
    x, y = _to_numpy(x).ravel(), _to_numpy(y).ravel()
    if x.size < 2:
        return float("nan")
    rx = np.empty(x.size)
    rx[np.argsort(x, kind="stable")] = np.arange(x.size)
    ry = np.empty(y.size)
    ry[np.argsort(y, kind="stable")] = np.arange(y.size)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def _curve(order: np.ndarray, err: np.ndarray, steps: int) -> np.ndarray:
    """Mean error of the pixels left after removing the first k/steps of ``order``."""
    n = err.size
    kept = err[order][::-1]  # most confident last in ``order`` -> first here
    csum = np.cumsum(kept)
    counts = np.array([n - int(round(n * k / steps)) for k in range(steps)])
    return csum[counts - 1] / counts


def sparsification(sigma, error, steps: int = SPARSIFICATION_STEPS
                   ) -> dict[str, np.ndarray | float]:
    """Sparsification curves of one image's pixels (Poggi et al., CVPR 2020).

    Pixels are removed most-uncertain first (by ``sigma``) and, for the oracle, largest-error
    first; each curve is the mean ``error`` of what remains, normalised by the full-set mean.
    AUSE is the area between the two curves over the removed fraction in [0, 1).

    Args:
        sigma: per-pixel uncertainty of valid pixels (1-D, any units).
        error: per-pixel error of the same pixels (1-D; e.g. |d - gt| or |d - gt| / gt).
    """
    sigma, error = _to_numpy(sigma).ravel(), _to_numpy(error).ravel()
    if sigma.size < steps:
        raise ValueError(f"sparsification needs >= {steps} pixels, got {sigma.size}")
    base = error.mean()
    by_sigma = _curve(np.argsort(-sigma, kind="stable"), error, steps) / base
    oracle = _curve(np.argsort(-error, kind="stable"), error, steps) / base
    fractions = np.arange(steps) / steps
    gap = by_sigma - oracle
    ause = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(fractions)))
    return {"fractions": fractions, "sigma_curve": by_sigma, "oracle_curve": oracle,
            "ause": ause}


def uncertainty_metrics(pred, sigma, gt, *, min_depth: float = MIN_DEPTH_M,
                        max_depth: float = MAX_DEPTH_M, crop: Crop = None) -> dict[str, float]:
    """Spearman rho(sigma, |error|) and AUSE (abs error and relative error) for one image.

    pred, sigma, gt: H x W metres (gt 0 = invalid); scored on the valid-GT pixels of the crop.
    """
    pred_np, sigma_np, gt_np = (_to_numpy(a) for a in (pred, sigma, gt))
    mask = valid_mask(gt_np, min_depth=min_depth, max_depth=max_depth, crop=crop)
    mask &= np.isfinite(sigma_np) & np.isfinite(pred_np)
    p, s, g = pred_np[mask], sigma_np[mask], gt_np[mask]
    abs_err = np.abs(np.clip(p, min_depth, max_depth) - g)
    return {
        "spearman_sigma_abs_err": spearman(s, abs_err),
        "ause_abs_err": sparsification(s, abs_err)["ause"],
        "ause_abs_rel": sparsification(s, abs_err / g)["ause"],
    }
