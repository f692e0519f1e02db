"""X-Distill's segmentation teacher and the depth-compatible regrouping of its classes.

``segmentation_teacher``: encoder -> FPN-style head -> 19 Cityscapes classes (trainIds) at the
input resolution. Train it on the synthetic world's labels (recipe ``segmentation``) or load
user weights. X-Distill's regrouping of the 19 classes into 4 groups is data: it lives in
:mod:`depth_kd_core.data.semantics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depth_kd_core.data.semantics import CITYSCAPES_CLASSES
from depth_kd_core.layers.blocks import ConvBlock
from depth_kd_core.models.base import DepthModel, ModelCfg, OutputKind
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model


@dataclass
class SegmentationCfg(ModelCfg):
    """Segmentation teacher: encoder + FPN head with ``fpn_channels`` lateral width."""

    encoder: str = "resnet18"
    fpn_channels: int = 64
    num_classes: int = len(CITYSCAPES_CLASSES)
    output_kind: OutputKind = "semantics"


class SegmentationNet(DepthModel):
    """left (B, 3, H, W) -> semantics logits (B, num_classes, H, W)."""

    def __init__(self, cfg: SegmentationCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained)
        c = cfg.fpn_channels
        self.lateral = nn.ModuleList(nn.Conv2d(ch, c, 1) for ch in self.encoder.channels)
        self.smooth = nn.ModuleList(ConvBlock(c, c, act="relu", norm=True, padding_mode="zeros")
                                    for _ in self.encoder.channels)
        self.classifier = nn.Sequential(
            ConvBlock(c * len(self.encoder.channels), c, act="relu", norm=True,
                      padding_mode="zeros"),
            nn.Conv2d(c, cfg.num_classes, 1))

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        feats = self.encoder(self.prepare(left, "left"))
        x = self.lateral[-1](feats[-1])
        tops = [x]
        for i in reversed(range(len(feats) - 1)):  # top-down pathway
            x = self.lateral[i](feats[i]) + F.interpolate(x, size=feats[i].shape[-2:],
                                                          mode="nearest")
            tops.append(x)
        tops = [s(t) for s, t in zip(self.smooth, tops[::-1])]  # finest first
        size = tops[0].shape[-2:]
        fused = torch.cat([F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                           for t in tops], dim=1)
        logits = F.interpolate(self.classifier(fused), size=left.shape[-2:], mode="bilinear",
                               align_corners=False)
        return {"semantics": logits}


@register_model("segmentation_teacher", SegmentationCfg)
def segmentation_teacher(cfg: SegmentationCfg) -> SegmentationNet:
    return SegmentationNet(cfg)
