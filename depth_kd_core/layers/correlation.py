"""Stereo correlation layer (DACNN teacher's matching volume, §3.2; METHODS.md §0)."""

from __future__ import annotations

import torch
from torch import nn

from depth_kd_core.kernels import DACNN_MAX_DISP, correlation1d


class Correlation1d(nn.Module):
    """Parameter-free 1-D correlation c_d(x) = mean_c f_l(x) f_r(x - d) of rectified features.

    Args:
        max_disp: D, pixels at the feature resolution (24 at 1/8 scale in DACNN).
        symmetric: d = -D..D (2D + 1 channels, DispNet-C) instead of d = 0..D.
        impl: "auto", "reference" or "triton".

    Shapes:
        forward(left (B, C, H, W), right (B, C, H, W)) -> (B, D + 1 or 2D + 1, H, W);
        output channel k holds disparity k (or k - D when symmetric).
    """

    def __init__(self, max_disp: int = DACNN_MAX_DISP, symmetric: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        self.max_disp, self.symmetric, self.impl = max_disp, symmetric, impl

    @property
    def out_channels(self) -> int:
        """Number of disparity channels produced."""
        return 2 * self.max_disp + 1 if self.symmetric else self.max_disp + 1

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Correlate ``left`` with ``right`` shifted by each disparity (see class docstring)."""
        return correlation1d(left, right, self.max_disp, self.symmetric, self.impl)

    def extra_repr(self) -> str:
        return f"max_disp={self.max_disp}, symmetric={self.symmetric}, impl={self.impl}"
