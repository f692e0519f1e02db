"""The validation image grid: input, prediction, teacher, ground truth, sigma (first item)."""

from __future__ import annotations

import numpy as np
import torch

from depth_kd_core.visualize import colorize, colorize_depth, image_grid, to_rgb_u8


def _depth_panel(depth: torch.Tensor, max_depth: float) -> np.ndarray:
    return colorize_depth(depth[0].detach().float().cpu().numpy(), max_depth=max_depth)


def validation_grid(recipe, batch: dict, out: dict) -> np.ndarray:
    """H*k x W x 3 uint8 panels for TensorBoard (rows that exist for this recipe)."""
    cfg = recipe.export_model_cfg()
    rows = [to_rgb_u8(batch["left"][0])]
    if "depth" in out:
        rows.append(_depth_panel(out["depth"][0], cfg.max_depth))
    # a precomputed teacher's maps exist for training items only, not validation ones
    if recipe.teachers and "teacher" in recipe.teachers \
            and recipe.teacher.cfg.batch_keys <= set(batch):
        t = recipe.teacher_output({k: v[:1] if torch.is_tensor(v) else v
                                   for k, v in batch.items()})
        if "depth" in t:
            rows.append(_depth_panel(t["depth"][0], cfg.max_depth))
    if "depth_gt" in batch:
        rows.append(_depth_panel(batch["depth_gt"][0], cfg.max_depth))
    if "sigma" in out:
        sigma = out["sigma"][0, 0].detach().float().cpu().numpy()
        rows.append(colorize(sigma, 0.0, float(np.percentile(sigma, 99)) + 1e-6))
    if "semantics" in out:
        labels = out["semantics"][0].argmax(0).cpu().numpy().astype(np.float32)
        rows.append(colorize(labels, 0, 18))
    return image_grid(rows)
