"""Self-Distilled Feature Aggregation module (SDFA-Net, ECCV 2022; METHODS §1.3).

Aggregates a coarse decoder feature ("high") with a finer encoder feature ("low") after
resampling each by learned per-pixel offsets. Three offset branches: Delta1 (high, shared),
Delta2 (low, raw path), Delta3 (low, self-distilled path); the last conv of each is
zero-initialised so training starts from plain bilinear aggregation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def offset_resample(feat: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """g(F, Delta): sample ``feat`` at identity + offset.

    feat (B, C, H, W); offset (B, 2, H, W) in pixels (dx, dy). Bilinear, zero padding,
    align_corners=True, as in the SDFA code.
    """
    B, _, H, W = feat.shape
    ys = torch.linspace(-1.0, 1.0, H, device=feat.device, dtype=feat.dtype)
    xs = torch.linspace(-1.0, 1.0, W, device=feat.device, dtype=feat.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    scale_x = 2.0 / max(W - 1, 1)
    scale_y = 2.0 / max(H - 1, 1)
    grid = torch.stack([gx + offset[:, 0] * scale_x, gy + offset[:, 1] * scale_y], dim=-1)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _offset_branch(channels: int) -> nn.Sequential:
    last = nn.Conv2d(channels, 2, 3, padding=1, padding_mode="reflect", bias=False)
    nn.init.zeros_(last.weight)
    return nn.Sequential(nn.Conv2d(2 * channels, channels, 1, bias=False),
                         nn.BatchNorm2d(channels), nn.ELU(), last)


class SDFA(nn.Module):
    """high (B, C, h, w) coarse, low (B, C, H, W) fine -> (B, C, H, W).

    ``distilled=False`` (raw path): g(high, D1) + g(low, D2);
    ``distilled=True`` (self-distilled path): g(high, D1) + g(low, D3).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.delta_high = _offset_branch(channels)
        self.delta_low_raw = _offset_branch(channels)
        self.delta_low_distilled = _offset_branch(channels)

    def forward(self, high: torch.Tensor, low: torch.Tensor, distilled: bool = False
                ) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=True)
        z = torch.cat([low, high], dim=1)
        low_branch = self.delta_low_distilled if distilled else self.delta_low_raw
        return offset_resample(high, self.delta_high(z)) + offset_resample(low, low_branch(z))
