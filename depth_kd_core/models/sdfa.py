"""SDFA-Net (Zhou & Dong, ECCV 2022; METHODS §1.2-1.5).

Swin-T encoder with a stride-2 patch embedding (levels 1/2 .. 1/16) -> decoder of three SDFA
levels -> a 49-level exponential disparity-logit volume. Two data paths share everything but
the low-level offset branch and the output head: the raw path (Delta2, head ``out``) and the
self-distilled path (Delta3, head ``out_fine``). During stage-2 training the distilled path
runs on horizontally flipped encoder features; at inference it runs unflipped (METHODS §0).

Disparities are pixels of the input image: levels span [2, 300] px at a 1280-pixel-wide image
and scale with the input width. Depth = focal_px * baseline_m / disparity, with focal length
and baseline from the call's ``K``/``baseline`` when given, else from the config (the
training rig).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from depth_kd_core.layers.blocks import ConvBlock
from depth_kd_core.layers.disparity_volume import (
    SDFA_DISP_MAX_PX,
    SDFA_DISP_MIN_PX,
    SDFA_LEVELS,
    SDFA_REFERENCE_WIDTH,
    expected_disparity,
    exponential_levels,
)
from depth_kd_core.layers.sdfa import SDFA
from depth_kd_core.models.base import DepthModel, ModelCfg, OutputKind
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model

SDFA_SWIN_MEAN = (0.411, 0.432, 0.45)  # SDFA subtracts this mean and divides by 0.225
SDFA_SWIN_STD = (0.225, 0.225, 0.225)


@dataclass
class SdfaCfg(ModelCfg):
    """SDFA-Net.

    Attributes:
        decoder_channels: widths [64, 64, 128, 256] (finest first, METHODS §1.3).
        n_levels, disp_min_px, disp_max_px, reference_width: the disparity volume.
        baseline_m: stereo baseline of the training rig (with ``focal_px`` gives depth).
        inference_path: which path ``forward`` uses by default ("distilled" after stage 2;
            a stage-1 checkpoint should use "raw").
    """

    encoder: str = "swin_tiny"
    decoder_channels: tuple[int, int, int, int] = (64, 64, 128, 256)
    n_levels: int = SDFA_LEVELS
    disp_min_px: float = SDFA_DISP_MIN_PX
    disp_max_px: float = SDFA_DISP_MAX_PX
    reference_width: int = SDFA_REFERENCE_WIDTH
    baseline_m: float = 0.54
    focal_px: float = 721.54
    inference_path: Literal["raw", "distilled"] = "distilled"
    output_kind: OutputKind = "disparity_volume"
    mean: tuple[float, float, float] = SDFA_SWIN_MEAN
    std: tuple[float, float, float] = SDFA_SWIN_STD
    size_multiple: int = 32
    input_height: int = 192
    input_width: int = 640


class SdfaNet(DepthModel):
    """left (B, 3, H, W) -> disp_volume (B, N, H, W), disp (px), depth (m)."""

    def __init__(self, cfg: SdfaCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained)
        enc = self.encoder.channels
        if len(enc) != 4:
            raise ValueError(f"sdfa_net needs a 4-level encoder, '{cfg.encoder}' has {len(enc)}")
        dec = cfg.decoder_channels
        # level j = 1..3 coarse -> fine uses decoder widths dec[3], dec[2], dec[1]
        widths = [dec[3], dec[2], dec[1]]
        self.pre = nn.ModuleList()
        self.low_adjust = nn.ModuleList()
        self.sdfa = nn.ModuleList()
        self.post = nn.ModuleList()
        in_ch = enc[3]
        for j, c in enumerate(widths):
            self.pre.append(ConvBlock(in_ch, c))
            self.low_adjust.append(ConvBlock(enc[2 - j], c, norm=True))
            self.sdfa.append(SDFA(c))
            self.post.append(ConvBlock(c, c))
            in_ch = c
        self.final_pre = ConvBlock(in_ch, dec[0])
        self.final_post = ConvBlock(dec[0], dec[0])
        self.head_raw = nn.Conv2d(dec[0], cfg.n_levels, 3, padding=1, padding_mode="reflect")
        self.head_distilled = nn.Conv2d(dec[0], cfg.n_levels, 3, padding=1,
                                        padding_mode="reflect")

    def levels(self, width: int, device=None) -> torch.Tensor:
        """(N,) disparity levels in pixels of an image ``width`` pixels wide."""
        scale = width / self.cfg.reference_width
        return exponential_levels(self.cfg.n_levels, self.cfg.disp_min_px * scale,
                                  self.cfg.disp_max_px * scale, device=device)

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int], distilled: bool
               ) -> torch.Tensor:
        """Decode encoder features into (B, N, H, W) disparity logits through one data path."""
        x = feats[3]
        for j in range(3):
            x = self.pre[j](x)
            low = self.low_adjust[j](feats[2 - j])
            x = self.post[j](self.sdfa[j](x, low, distilled=distilled))
        x = F.interpolate(self.final_pre(x), size=size, mode="nearest")
        x = self.final_post(x)
        return (self.head_distilled if distilled else self.head_raw)(x)

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, *,
                path: Literal["raw", "distilled"] | None = None, flip_features: bool = False,
                K: torch.Tensor | None = None, baseline: torch.Tensor | None = None,
                **context) -> dict:
        """Run one data path; ``flip_features`` is the stage-2 self-distillation pass."""
        path = path or self.cfg.inference_path
        feats = self.encoder(self.prepare(left, "left"))
        if flip_features:
            feats = [torch.flip(f, dims=[3]) for f in feats]
        logits = self.decode(feats, left.shape[-2:], distilled=(path == "distilled"))
        if flip_features:
            logits = torch.flip(logits, dims=[3])
        levels = self.levels(left.shape[-1], left.device)
        disp = expected_disparity(logits, levels)
        focal_baseline = self.focal_baseline(left.shape[0], K, baseline, left)
        return {"disp_volume": logits, "disp": disp, "depth": focal_baseline / disp}

    def focal_baseline(self, batch: int, K, baseline, ref: torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, 1) fx * B in pixel-metres, from the call or the config."""
        fx = K[:, 0, 0] if K is not None else torch.full((batch,), self.cfg.focal_px)
        b = baseline if baseline is not None else torch.full((batch,), self.cfg.baseline_m)
        return (fx.to(ref) * b.to(ref)).view(-1, 1, 1, 1)


@register_model("sdfa_net", SdfaCfg)
def sdfa_net(cfg: SdfaCfg) -> SdfaNet:
    return SdfaNet(cfg)
