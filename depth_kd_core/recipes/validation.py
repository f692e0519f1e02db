"""Validation metrics a recipe reports each epoch (shared depth_kd_core.metrics)."""

from __future__ import annotations

import torch

from depth_kd_core.metrics import depth_metrics


def depth_validation(recipe, batch: dict, out: dict, only_valid: bool = False
                     ) -> dict[str, float] | None:
    """Eigen + KITTI metrics of ``out["depth"]`` against ``batch["depth_gt"]``.

    Relative-scale students (``output_kind == "relative_depth"``) are median-scaled per image,
    as for Monodepth2's mono models; metric ones are scored as they are. ``only_valid``
    scores only pixels where the prediction is > 0 (classical matchers with holes).
    Returns None when the batch has no ground truth.
    """
    if "depth_gt" not in batch:
        return None
    cfg = recipe.export_model_cfg()
    gt = batch["depth_gt"]
    if only_valid:
        gt = torch.where(out["depth"] > 0, gt, torch.zeros_like(gt))
    try:
        return depth_metrics(out["depth"], gt, min_depth=max(cfg.min_depth, 1e-3),
                             max_depth=cfg.max_depth,
                             median_scaling=cfg.output_kind == "relative_depth")
    except ValueError:  # no valid ground-truth pixel in this batch
        return None
