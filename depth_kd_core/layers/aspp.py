"""Atrous Spatial Pyramid Pooling (DeepLabv3), used by DACNN's teacher and student (§3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DACNN_ASPP_RATES = (1, 6, 12, 18)  # DACNN §3.1


class ASPP(nn.Module):
    """Parallel branches at several dilation rates plus image pooling, fused by a 1x1 conv.

    Rate 1 is a 1x1 conv, larger rates are dilated 3x3 convs (DeepLabv3). Output has the input's
    spatial size: (B, out_ch, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...] = DACNN_ASPP_RATES) -> None:
        super().__init__()

        def branch(rate: int) -> nn.Sequential:
            k, pad = (1, 0) if rate == 1 else (3, rate)
            return nn.Sequential(nn.Conv2d(in_ch, out_ch, k, padding=pad, dilation=rate,
                                           bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(True))

        self.branches = nn.ModuleList(branch(r) for r in rates)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1, bias=False),
                                  nn.ReLU(True))  # no BN: a 1x1 map with batch 1 has no statistics
        self.fuse = nn.Sequential(nn.Conv2d(out_ch * (len(rates) + 1), out_ch, 1, bias=False),
                                  nn.BatchNorm2d(out_ch), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="nearest"))
        return self.fuse(torch.cat(outs, dim=1))
