"""TIE-KD's losses (Choi et al., 2024; eq. 1-6, METHODS §2 and §0)."""

from __future__ import annotations

import math
from typing import Literal

import torch

from depth_kd_core.layers.ssim import gaussian_ssim

TIEKD_SIGMA_M = 0.8  # Gaussian width in metres (paper §4.2)
TIEKD_ALPHA, TIEKD_SCALE = 0.1, 10.0  # eq. 4: L = s (alpha L_DPM + (1 - alpha) L_DEPTH)
PDF_CUTOFF = 1e-16  # q_i below this gets logit -1000 (released code)
KL_EPS = 1e-7


def teacher_dpm(depth: torch.Tensor, centres: torch.Tensor, sigma: float = TIEKD_SIGMA_M,
                mode: Literal["softmax_pdf", "normalized"] = "softmax_pdf") -> torch.Tensor:
    """Teacher depth (B, 1, H, W) metres -> DPM (B, K, H, W) (eq. 1-2).

    "softmax_pdf" reproduces the released code: q_i = N(c_i; d_T, sigma) (pdf at the bin
    centre), q_i < 1e-16 -> logit -1000, DPM = softmax_i(q) — a broad plateau around d_T.
    "normalized" is a properly normalised Gaussian over bins (q_i / sum q).
    """
    diff = centres.view(1, -1, 1, 1).to(depth) - depth
    q = torch.exp(-(diff**2) / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
    if mode == "normalized":
        return q / q.sum(dim=1, keepdim=True).clamp_min(1e-30)
    logits = torch.where(q < PDF_CUTOFF, torch.full_like(q, -1000.0), q)
    return torch.softmax(logits, dim=1)


def dpm_kl(p_teacher: torch.Tensor, p_student: torch.Tensor, mask: torch.Tensor | None = None,
           eps: float = KL_EPS) -> torch.Tensor:
    """Compute L_DPM = KL(DPM_T || DPM_S) (eq. 5).

    Mean over pixels of sum_i P_T log(P_T / (P_S + eps) + eps); P_S == 0 terms skipped.
    """
    terms = p_teacher * torch.log(p_teacher / (p_student + eps) + eps)
    terms = torch.where(p_student > 0, terms, torch.zeros_like(terms))
    per_pixel = terms.sum(dim=1, keepdim=True)
    if mask is None:
        return per_pixel.mean()
    m = mask.to(per_pixel.dtype)
    return (per_pixel * m).sum() / m.sum().clamp_min(1.0)


def band_halfwidth(sigma: float = TIEKD_SIGMA_M, cutoff: float = PDF_CUTOFF) -> float:
    """Metres from d_T beyond which the pdf at a bin centre falls below the cut-off."""
    peak = 1.0 / math.sqrt(2 * math.pi * sigma**2)
    return sigma * math.sqrt(2.0 * math.log(peak / cutoff))


def teacher_dpm_band(depth: torch.Tensor, centres: torch.Tensor, sigma: float = TIEKD_SIGMA_M,
                     mode: Literal["softmax_pdf", "normalized"] = "softmax_pdf"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the teacher DPM on the bins where it is non-zero: (index, probability), (B, K, H, W).

    Identical to :func:`teacher_dpm` (which is exactly 0 outside |c_i - d_T| <= r, r from the
    1e-16 cut-off, about 6.8 m for sigma = 0.8) but touches only the ~2r / bin-width bins of
    that band instead of all 257; entries past the band's ends have probability 0.
    """
    width = float(centres[1] - centres[0])
    r = band_halfwidth(sigma)
    k = int(math.floor(2 * r / width)) + 2
    first = torch.ceil((depth - r - float(centres[0])) / width).long()  # first bin in range
    idx = first + torch.arange(k, device=depth.device).view(1, -1, 1, 1)
    inside = (idx >= 0) & (idx < len(centres))
    idx = idx.clamp(0, len(centres) - 1)
    diff = centres.to(depth)[idx] - depth
    q = torch.exp(-(diff**2) / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
    keep = inside & (q >= PDF_CUTOFF)
    if mode == "normalized":
        q = torch.where(keep, q, torch.zeros_like(q))
        return idx, q / q.sum(dim=1, keepdim=True).clamp_min(1e-30)
    logits = torch.where(keep, q, torch.full_like(q, float("-inf")))
    return idx, torch.softmax(logits, dim=1)


def dpm_kl_band(index: torch.Tensor, p_teacher: torch.Tensor, p_student: torch.Tensor,
                mask: torch.Tensor | None = None, eps: float = KL_EPS) -> torch.Tensor:
    """:func:`dpm_kl` for a teacher DPM given on a band of bins (``teacher_dpm_band``)."""
    return dpm_kl(p_teacher, torch.gather(p_student, 1, index), mask, eps)


def depth_ssim_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Eq. 6: L_DEPTH = 1 - SSIM(d_S, d_T) on raw metric depth (11x11 Gaussian window)."""
    return 1.0 - gaussian_ssim(student, teacher)


def tiekd_loss(student_dpm: torch.Tensor, student_depth: torch.Tensor,
               teacher_depth: torch.Tensor, centres: torch.Tensor, *,
               valid: torch.Tensor | None = None, sigma: float = TIEKD_SIGMA_M,
               alpha: float = TIEKD_ALPHA, scale: float = TIEKD_SCALE, crop_top: int = 0,
               dpm_mode: Literal["softmax_pdf", "normalized"] = "softmax_pdf"
               ) -> dict[str, torch.Tensor]:
    """Eq. 4: s (alpha L_DPM + (1 - alpha) L_DEPTH), on rows >= crop_top (KITTI: 110).

    ``valid`` (default: teacher depth > 0) selects the pixels of L_DPM; L_DEPTH is an SSIM
    over the whole (cropped) map.
    """
    sl = (..., slice(crop_top, None), slice(None))
    t_depth, s_depth, s_dpm = teacher_depth[sl], student_depth[sl], student_dpm[sl]
    valid = t_depth > 0 if valid is None else valid[sl]
    with torch.no_grad():
        index, p_teacher = teacher_dpm_band(t_depth.clamp_min(1e-3), centres, sigma, dpm_mode)
    l_dpm = dpm_kl_band(index, p_teacher, s_dpm, valid)
    l_depth = depth_ssim_loss(s_depth, t_depth)
    return {"loss": scale * (alpha * l_dpm + (1 - alpha) * l_depth), "l_dpm": l_dpm,
            "l_depth": l_depth}
