"""Asymmetric Pyramid Non-local Block (Zhu et al., ICCV 2019), DACNN's student context block.

Queries come from every pixel; keys and values from a small set of anchors obtained by
pyramid pooling (sizes 1, 3, 6, 8 -> 110 anchors), so attention costs O(HW x 110) instead of
O((HW)^2). The attended context is concatenated with the input and fused by a 1x1 conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PYRAMID_SIZES = (1, 3, 6, 8)


class APNonLocal(nn.Module):
    """x (B, C, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, key_ch: int | None = None,
                 sizes: tuple[int, ...] = PYRAMID_SIZES) -> None:
        super().__init__()
        key_ch = key_ch or max(in_ch // 2, 8)
        self.sizes = sizes
        self.query = nn.Sequential(nn.Conv2d(in_ch, key_ch, 1, bias=False),
                                   nn.BatchNorm2d(key_ch), nn.ReLU(True))
        self.key = self.query  # shared query/key projection, as in the APNB
        self.value = nn.Conv2d(in_ch, key_ch, 1)
        self.out = nn.Conv2d(key_ch, in_ch, 1)
        self.fuse = nn.Sequential(nn.Conv2d(2 * in_ch, out_ch, 1, bias=False),
                                  nn.BatchNorm2d(out_ch), nn.ReLU(True))
        self.scale = key_ch ** -0.5

    def _anchors(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, S) pyramid-pooled anchors."""
        return torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in self.sizes], dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # B x HW x K
        k = self._anchors(self.key(x))  # B x K x S
        v = self._anchors(self.value(x)).transpose(1, 2)  # B x S x K
        attn = torch.softmax(q @ k * self.scale, dim=-1)  # B x HW x S
        ctx = (attn @ v).transpose(1, 2).reshape(B, -1, H, W)
        return self.fuse(torch.cat([x, self.out(ctx)], dim=1))
