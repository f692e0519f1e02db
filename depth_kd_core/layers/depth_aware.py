"""Depth-aware convolution layers of DACNN (§3.3, eq. 2; METHODS.md §0 and §4).

``DepthAwareConv2d`` is a 3x3 convolution whose taps are re-weighted by
K(g(p), g(p+o)) = exp(-alpha * ||g(p) - g(p+o)||^2) of a depth guidance g, with a learnable
alpha. ``DepthAwareBlock`` runs four of them at dilations {1, 6, 12, 18} over the same input and
guidance, concatenates the results and fuses them with a 1x1 convolution: one depth-aware block.

The guidance must already be at the feature's resolution: DACNN produces it at three scales
(g1, g2, g3) and the model passes the matching one (resizing is the caller's job).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from depth_kd_core.kernels import depth_aware_conv2d

DACNN_DILATIONS = (1, 6, 12, 18)  # DACNN §3.3
ALPHA_INIT = 1.0  # METHODS §0: alpha learnable, initialised to 1


class DepthAwareConv2d(nn.Module):
    """3x3 depth-aware convolution, stride 1, zero padding (output size = input size).

    Args:
        in_channels: C.
        out_channels: C'.
        dilation: tap spacing d, pixels.
        bias: learn a per-channel bias.
        kernel: "gaussian" (default, squared L2 guidance distance) or "l1".
        alpha: initial value of the learnable alpha, or an ``nn.Parameter`` to share one alpha
            between layers (see ``DepthAwareBlock(share_alpha=True)``).
        impl: "auto", "reference", "chunked" or "triton" (models pass their config's value).

    Shapes:
        forward(x (B, C, H, W), guidance (B, G, H, W)) -> (B, C', H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1, *,
                 bias: bool = True, kernel: str = "gaussian",
                 alpha: float | nn.Parameter = ALPHA_INIT, impl: str = "auto") -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.dilation, self.kernel, self.impl = dilation, kernel, impl
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        if not isinstance(alpha, nn.Parameter):
            alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.alpha = alpha
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation, so alpha = 0 starts exactly as a plain convolution."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_channels * 9)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Args:
            x: (B, C, H, W) features.
            guidance: (B, G, H, W) depth guidance at the same H, W.

        Returns:
            (B, C', H, W).
        """
        return depth_aware_conv2d(x, guidance, self.weight, self.bias, alpha=self.alpha,
                                  dilation=self.dilation, kernel=self.kernel, impl=self.impl)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, dilation={self.dilation}, "
                f"kernel={self.kernel}, impl={self.impl}, bias={self.bias is not None}")


class DepthAwareBlock(nn.Module):
    """One DACNN depth-aware block: parallel dilated depth-aware convs, concat, 1x1 fusion.

    Args:
        in_channels: C of the input features.
        out_channels: channels after the 1x1 fusion.
        branch_channels: channels of each dilated branch (default: ``out_channels``).
        dilations: one branch per dilation (default DACNN's {1, 6, 12, 18}).
        kernel: "gaussian" or "l1" (see ``DepthAwareConv2d``).
        alpha_init: initial alpha.
        share_alpha: one alpha for the whole block (METHODS §0 reads "per block") instead of
            one per depth-aware conv (the issue's "per layer", the default).
        impl: implementation of the depth-aware convs.

    Shapes:
        forward(x (B, C, H, W), guidance (B, G, H, W)) -> (B, out_channels, H, W).
        No normalisation or activation is applied: the paper's block ends at the 1x1 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, *, branch_channels: int | None = None,
                 dilations: Sequence[int] = DACNN_DILATIONS, kernel: str = "gaussian",
                 alpha_init: float = ALPHA_INIT, share_alpha: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        if not dilations:
            raise ValueError("dilations must name at least one dilation, e.g. (1, 6, 12, 18)")
        branch_channels = branch_channels or out_channels
        shared = nn.Parameter(torch.tensor(float(alpha_init))) if share_alpha else None
        self.branches = nn.ModuleList(
            DepthAwareConv2d(in_channels, branch_channels, d, kernel=kernel,
                             alpha=shared if shared is not None else alpha_init, impl=impl)
            for d in dilations)
        self.fuse = nn.Conv2d(branch_channels * len(dilations), out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, C, H, W) features.
            guidance: (B, G, H, W) depth guidance at the features' resolution.

        Returns:
            (B, out_channels, H, W).
        """
        return self.fuse(torch.cat([branch(x, guidance) for branch in self.branches], dim=1))
