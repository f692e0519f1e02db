"""Small convolutional building blocks shared by decoders and heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU}


class ConvBlock(nn.Module):
    """k x k conv (reflection padding by default) -> optional BatchNorm -> activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, *, norm: bool = False,
                 act: str | None = "elu", padding_mode: str = "reflect", dilation: int = 1) -> None:
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
    """3x3 conv -> sigmoid -> metres in (min_depth, max_depth) (NeWCRFs/ADU DispHead style).

    Output: (B, 1, H, W) metres.
    """

    def __init__(self, in_ch: int, min_depth: float, max_depth: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 1, 3, padding=1)
        self.min_depth, self.max_depth = min_depth, max_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(self.conv(x))
