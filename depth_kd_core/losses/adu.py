"""ADU-Depth's distillation losses (Wu et al., CoRL 2023; METHODS §3 and §0).

Feature terms average the squared difference over channels at each pixel (a per-pixel MSE),
so levels with different channel counts weigh alike and the uncertainty s has one reading.
"""

from __future__ import annotations

import math

import torch

from depth_kd_core.layers.uncertainty import resize_log_var
from depth_kd_core.losses.depth import masked_mean

FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0  # focal-loss defaults (METHODS §0)
ADU_W_UMR, ADU_W_UMF, ADU_W_FOCAL = 0.9, 0.6, 0.8  # eq. 9 (KITTI)


def focal_depth_loss(teacher: torch.Tensor, student: torch.Tensor,
                     mask: torch.Tensor | None = None, alpha: float = FOCAL_ALPHA,
                     gamma: float = FOCAL_GAMMA, eps: float = 1e-6) -> torch.Tensor:
    """Compute the focal-depth response loss (eq. 4-5); depths (B, 1, H, W) metres.

    p_d = 1 - mean_i |(d^t_i - d^s_i) / d^t_i| per image, clamped to [eps, 1];
    L = -alpha (1 - p_d)^gamma log p_d, averaged over the batch.
    """
    rel = ((teacher - student) / teacher.clamp_min(1e-6)).abs()
    if mask is None:
        mask = teacher > 0
    m = mask.to(rel.dtype)
    per_image = (rel * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)
    p = (1.0 - per_image).clamp(eps, 1.0)
    return (-alpha * (1 - p) ** gamma * torch.log(p)).mean()


def umf_loss(teacher: list[torch.Tensor], restored: list[torch.Tensor], log_var: torch.Tensor
             ) -> torch.Tensor:
    """Compute L_umf, the uncertainty-weighted feature loss (eq. 7, Gaussian).

    L_umf = sum over levels of mean_i [1/2 e^{-s_i} ||F^t_i - g(F~^s_i)||^2 + 1/2 s_i].
    log_var (B, 1, H, W) at depth-map size is resized to each level.
    """
    total = log_var.new_zeros(())
    for t, r in zip(teacher, restored, strict=True):
        s = resize_log_var(log_var, t.shape[-2:])
        sq = ((t - r) ** 2).mean(dim=1, keepdim=True)
        total = total + (0.5 * torch.exp(-s) * sq + 0.5 * s).mean()
    return total


def umr_loss(teacher: torch.Tensor, student: torch.Tensor, log_var: torch.Tensor,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8 (Laplace): mean_i [sqrt(2) e^{-s_i} |d^t_i - g(d~^s_i)| + s_i], g = identity."""
    term = math.sqrt(2.0) * torch.exp(-log_var) * (teacher - student).abs() + log_var
    return masked_mean(term, teacher > 0 if mask is None else mask)
