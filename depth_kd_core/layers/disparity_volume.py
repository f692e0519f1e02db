"""Disparity-logit volumes (FAL-Net / SDFA-Net machinery, METHODS §1.4).

Levels are exponentially spaced: d_n = D_max (D_max / D_min)^(n / (N - 1) - 1), n = 0..N-1,
so d_0 = D_min and d_{N-1} = D_max (pixels). A left volume V_l (B, N, H, W) gives
P_l = softmax_n V_l and the pseudo-disparity D = sum_n d_n P_l^n (eq. 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SDFA_LEVELS = 49
SDFA_DISP_MIN_PX, SDFA_DISP_MAX_PX = 2.0, 300.0  # at a 1280-pixel-wide image
SDFA_REFERENCE_WIDTH = 1280


def exponential_levels(n: int = SDFA_LEVELS, d_min: float = SDFA_DISP_MIN_PX,
                       d_max: float = SDFA_DISP_MAX_PX, device=None) -> torch.Tensor:
    """(n,) disparity levels in pixels, d_0 = d_min ... d_{n-1} = d_max."""
    k = torch.arange(n, dtype=torch.float64, device=device)
    return (d_max * (d_max / d_min) ** (k / (n - 1) - 1.0)).float()


def expected_disparity(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) logits -> (B, 1, H, W) pixels, sum_n d_n softmax_n (eq. 8)."""
    return (torch.softmax(logits, dim=1) * levels.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)


def shift_levels(x: torch.Tensor, shifts: torch.Tensor, padding_mode: str = "zeros"
                 ) -> torch.Tensor:
    """Shift channel n of x by +shifts[n] pixels horizontally: out_n(x, y) = x_n(x + s_n, y).

    x (B, N, C, H, W) or (B, N, H, W); shifts (N,) pixels. Bilinear; normalised offsets use
    s / (W / 2) with align_corners=True, the authors' convention (METHODS §1.4).
    """
    squeeze = x.dim() == 4
    if squeeze:
        x = x.unsqueeze(2)
    B, N, C, H, W = x.shape
    ys = torch.linspace(-1.0, 1.0, H, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, W, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gx = gx.unsqueeze(0) + (shifts.to(x) / (W / 2.0)).view(N, 1, 1)  # N x H x W
    grid = torch.stack([gx, gy.expand_as(gx)], dim=-1)  # N x H x W x 2
    grid = grid.unsqueeze(0).expand(B, -1, -1, -1, -1).reshape(B * N, H, W, 2)
    out = F.grid_sample(x.reshape(B * N, C, H, W), grid, mode="bilinear",
                        padding_mode=padding_mode, align_corners=True)
    out = out.reshape(B, N, C, H, W)
    return out.squeeze(2) if squeeze else out


def synthesize_right(left_logits: torch.Tensor, left_image: torch.Tensor, levels: torch.Tensor
                     ) -> torch.Tensor:
    """Right view from a left disparity volume (SDFA eq. 7).

    V_r^n(x) = V_l^n(x + d_n) (zero padding), P_r = softmax_n V_r, and
    I_r_hat = sum_n P_r^n * I_l(x + d_n) (border padding). left_image (B, 3, H, W).
    """
    right_logits = shift_levels(left_logits, levels, "zeros")
    prob = torch.softmax(right_logits, dim=1).unsqueeze(2)  # B x N x 1 x H x W
    shifted = shift_levels(left_image.unsqueeze(1).expand(-1, len(levels), -1, -1, -1), levels,
                           "border")
    return (prob * shifted).sum(dim=1)
