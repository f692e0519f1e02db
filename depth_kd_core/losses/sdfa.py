"""SDFA-Net's self-distillation losses and masks (Zhou & Dong, ECCV 2022).

Eq. 9-18 of the paper; METHODS §1.5-1.6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PHOTO_T1, PHOTO_T2 = 1e-5, 0.2  # eq. 11 thresholds
VISIBLE_SEARCH = 61  # eq. 12-13: K = 61 candidate occluders to the right
VISIBLE_THRESHOLD = 0.5
# eq. 18: L = L_rec + 0.01 L_sd + 0.0008 L_smo^raw + 0.0016 L_smo^d
SDFA_W_SD, SDFA_W_SMOOTH_RAW, SDFA_W_SMOOTH_DISTILLED = 0.01, 0.0008, 0.0016
SDFA_PERCEPTUAL_WEIGHT = 0.01


def photometric_mask(err_raw: torch.Tensor, err_distilled: torch.Tensor, t1: float = PHOTO_T1,
                     t2: float = PHOTO_T2) -> torch.Tensor:
    """Return the photometric mask (eq. 11): M_p = [e(I~^r) < e(I~^d) + t1] * [e(I~^r) < t2].

    It trusts the raw depth only where it reconstructs the left image better than the
    distilled one and well in absolute terms.
    """
    return ((err_raw < err_distilled + t1) & (err_raw < t2)).to(err_raw.dtype)


def visible_mask(disp: torch.Tensor, search: int = VISIBLE_SEARCH,
                 threshold: float = VISIBLE_THRESHOLD) -> torch.Tensor:
    """Return 1 where a left pixel is visible in the right view, from its disparity (eq. 12-13).

    disp (B, 1, H, W) pixels of the left view. Pixel x is occluded when some pixel k = i + 2
    columns to its right has a disparity larger by about i + 1, i.e. lands on the same right
    pixel: v(x) = clamp(min_i |mean3x2(D)(x) - mean3(D)(x + i + 2) + (i + 1)|, 0, 1), with
    row means over y-1..y+1 and replicate padding; visible = v > threshold.
    """
    d = disp.detach()
    rows = F.avg_pool2d(F.pad(d, (0, 0, 1, 1), mode="replicate"), (3, 1), stride=1)
    padded = F.pad(rows, (0, search + 1, 0, 0), mode="replicate")
    W = d.shape[-1]
    here = (rows + padded[..., 1:W + 1]) / 2  # mean over columns x, x+1
    best = torch.full_like(d, float("inf"))
    for i in range(search):
        other = padded[..., i + 2:i + 2 + W]
        best = torch.minimum(best, (here - other + (i + 1)).abs())
    return (best.clamp(0, 1) > threshold).to(disp.dtype)


def edge_mask(disp: torch.Tensor) -> torch.Tensor:
    """M_edge: 1 where the warp x - D(x) samples inside the right image."""
    W = disp.shape[-1]
    xs = torch.arange(W, device=disp.device, dtype=disp.dtype).view(1, 1, 1, W)
    return ((xs - disp) >= 0).to(disp.dtype)


def self_distillation_loss(depth_distilled: torch.Tensor, depth_raw: torch.Tensor,
                           mask: torch.Tensor) -> torch.Tensor:
    """Compute L_sd, the self-distillation loss (eq. 15).

    Mean over all pixels of M |depth^d - sg(depth^raw)| (metres; masked pixels add 0).
    """
    return (mask * (depth_distilled - depth_raw.detach()).abs()).mean()

