"""Supervised depth losses: masked L1 (DACNN pixel/proxy) and SILog (NeWCRFs / ADU baseline)."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of x over mask (broadcast); 0 when the mask is empty (nothing to learn)."""
    if mask is None:
        return x.mean()
    mask = mask.to(x.dtype).expand_as(x)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Return mean |pred - target| over ``mask`` (default: target > 0), metres.

    DACNN eq. 3 (L_pixel, against ground truth) and eq. 5 (L_proxy, against the teacher);
    the papers' norm was lost, METHODS §0 settles on L1.
    """
    mask = target > 0 if mask is None else mask
    return masked_mean((pred - target).abs(), mask)


def silog_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
               variance_focus: float = 0.85, scale: float = 10.0) -> torch.Tensor:
    """Scale-invariant log loss, NeWCRFs' L_b: 10 sqrt(mean g^2 - 0.85 mean(g)^2), g = ln p - ln t.

    pred, target (B, 1, H, W) metres; mask defaults to target > 0 (NeWCRFs uses gt > 1 m on
    KITTI; recipes pass their own mask).
    """
    mask = target > 0 if mask is None else mask
    mask = mask & (pred > 0)
    g = torch.log(pred[mask]) - torch.log(target[mask])
    if g.numel() == 0:
        return pred.sum() * 0.0
    d = (g**2).mean() - variance_focus * g.mean() ** 2
    return scale * torch.sqrt(d.clamp_min(1e-12))
