"""SSIM, in the two forms the methods use.

- ``ssim_loss_map``: Monodepth2 / SDFA per-pixel loss clamp((1 - SSIM) / 2, 0, 1) with a 3x3
  average window and reflection padding (METHODS §1.5, §6).
- ``gaussian_ssim``: TIE-KD's scalar SSIM with an 11x11 Gaussian window (sigma 1.5), zero
  padding and |.| on the (co)variances (METHODS §2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def box_mean3(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H + 2, W + 2) -> (B, C, H, W): mean of each 3x3 window (unpadded).

    The same values as ``F.avg_pool2d(t, 3, 1)`` (up to float rounding) as two separable
    sums of shifted slices: on a CPU the pooling kernel was several times slower, forward and
    backward, and the photometric losses call it five times per SSIM.
    """
    rows = t[..., :, :-2] + t[..., :, 1:-1] + t[..., :, 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9


def ssim_loss_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images in [0, 1] -> (B, C, H, W) per-pixel SSIM loss in [0, 1]."""
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = box_mean3(x), box_mean3(y)
    sigma_x = box_mean3(x * x) - mu_x**2
    sigma_y = box_mean3(y * y) - mu_y**2
    sigma_xy = box_mean3(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(size, size) normalised Gaussian window."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype)


def gaussian_ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5
                  ) -> torch.Tensor:
    """Mean SSIM of (B, C, H, W) maps (TIE-KD's L_DEPTH = 1 - this, on metric depth)."""
    C = x.shape[1]
    w = gaussian_window(window, sigma, x.device, x.dtype).expand(C, 1, window, window)
    pad = window // 2
    conv = lambda t: F.conv2d(t, w, padding=pad, groups=C)  # noqa: E731
    mu_x, mu_y = conv(x), conv(y)
    sigma_x = (conv(x * x) - mu_x**2).abs()
    sigma_y = (conv(y * y) - mu_y**2).abs()
    sigma_xy = (conv(x * y) - mu_x * mu_y).abs()
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return (num / den).mean()
