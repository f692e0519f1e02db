"""ADU-Depth's uncertainty estimation module (UEM) and its log-variance helpers.

UEM (ADU §3.2, METHODS §0): 3x3 conv -> sigmoid -> scaling layer giving s = log sigma^2 in
[s_min, s_max] = [-6, 6]. The map has the depth map's size and is resized to each feature
level (1/4 .. 1/32) for the feature-distillation loss.

Published sigma (metres): the response loss L_umr = sqrt(2) e^{-s} |r| + s (Laplace) is
minimised at e^{s} = sqrt(2) |r|, the standard deviation of a Laplace residual in metres, so
``sigma_from_log_var(s, "laplace") = exp(s)``. The Gaussian reading of s (sigma = exp(s / 2),
the feature loss's optimum e^{s} = r^2) is selectable.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

UEM_S_MIN, UEM_S_MAX = -6.0, 6.0


class UncertaintyHead(nn.Module):
    """(B, C, H, W) -> (B, 1, H, W) log-variance s in [s_min, s_max]."""

    def __init__(self, in_ch: int, s_min: float = UEM_S_MIN, s_max: float = UEM_S_MAX) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 1, 3, padding=1)
        self.s_min, self.s_max = s_min, s_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s_min + (self.s_max - self.s_min) * torch.sigmoid(self.conv(x))


def resize_log_var(s: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a log-variance map to a feature level (area average when shrinking)."""
    if tuple(s.shape[-2:]) == tuple(size):
        return s
    if s.shape[-2] >= size[0] and s.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(s, size)
    return F.interpolate(s, size=size, mode="bilinear", align_corners=False)


def sigma_from_log_var(s: torch.Tensor, mode: Literal["laplace", "gaussian"] = "laplace"
                       ) -> torch.Tensor:
    """Uncertainty in metres from s (see the module docstring)."""
    return torch.exp(s) if mode == "laplace" else torch.exp(0.5 * s)
