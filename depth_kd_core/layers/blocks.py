"""Small convolutional building blocks shared by decoders and heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU}


class ConvBlock(nn.Module):
    """k x k conv (reflection padding by default) -> optional BatchNorm -> activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, *, norm: bool = False,
                 act: str | None = "elu", padding_mode: str = "reflect",
                 dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=pad, dilation=dilation,
                              padding_mode=padding_mode if pad else "zeros", bias=not norm)
        self.norm = nn.BatchNorm2d(out_ch) if norm else nn.Identity()
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def upsample_to(x: torch.Tensor, ref: torch.Tensor | tuple[int, int], mode: str = "nearest",
                align_corners: bool | None = None) -> torch.Tensor:
    """Resize x (B, C, h, w) to the spatial size of ``ref`` (a tensor or (H, W))."""
    size = tuple(ref.shape[-2:]) if isinstance(ref, torch.Tensor) else tuple(ref)
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


class DepthHead(nn.Module):
    """3x3 conv -> sigmoid -> metres in (min_depth, max_depth). Output: (B, 1, H, W) metres.

    ``mode="linear"``: depth = min + (max - min) s (NeWCRFs/ADU DispHead, for supervised
    regression). ``mode="inverse"``: 1/depth = 1/max + (1/min - 1/max) s (Monodepth2's
    disp_to_depth), which starts near the camera and suits photometric self-supervision.
    """

    def __init__(self, in_ch: int, min_depth: float, max_depth: float,
                 mode: str = "linear") -> None:
        super().__init__()
        if mode not in ("linear", "inverse"):
            raise ValueError(f"depth head mode must be 'linear' or 'inverse', got {mode!r}")
        self.conv = nn.Conv2d(in_ch, 1, 3, padding=1)
        self.min_depth, self.max_depth, self.mode = min_depth, max_depth, mode
        if mode == "inverse":  # start at the range's geometric mean, not near min_depth
            mid = (min_depth * max_depth) ** 0.5
            s = (1 / mid - 1 / max_depth) / (1 / min_depth - 1 / max_depth)
            nn.init.constant_(self.conv.bias, math.log(s / (1 - s)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.conv(x))
        if self.mode == "inverse":
            lo, hi = 1.0 / self.max_depth, 1.0 / self.min_depth
            return 1.0 / (lo + (hi - lo) * s)
        return self.min_depth + (self.max_depth - self.min_depth) * s
