"""TIE-KD's student: MobileNetV2 encoder -> U-Net decoder -> DPM head (METHODS §2).

The head turns the last decoder feature into a depth probability map over 257 uniform bins
in [1e-3, 80] m; depth is the expectation over bin centres (TIE-KD eq. 3) and sigma, the
DPM's spread, is the uncertainty in metres. ``head="regression"`` is the paper's no-KD
baseline: the same network with the DPM layer replaced by a regression layer (sigmoid x range),
trained on ground truth with the scale-invariant loss (TIE-KD §IV-A).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from depth_kd_core.layers.blocks import DepthHead, upsample_to
from depth_kd_core.layers.dpm import TIEKD_BINS, DPMHead
from depth_kd_core.models.base import DepthModel, ModelCfg, OutputKind
from depth_kd_core.models.decoders import UNetDecoder
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model


@dataclass
class TieKDStudentCfg(ModelCfg):
    """TIE-KD student. ``decoder_channels`` per encoder level, finest first.

    ``head``: "dpm" (the student) or "regression" (the paper's baseline); ``output_kind``
    follows it (dpm / metric_depth).
    """

    encoder: str = "mobilenetv2_100"
    decoder_channels: tuple[int, ...] = (64, 128, 256, 512, 1024)
    n_bins: int = TIEKD_BINS
    head: Literal["dpm", "regression"] = "dpm"
    output_kind: OutputKind = "dpm"
    input_height: int = 352
    input_width: int = 704

    def __post_init__(self) -> None:
        self.output_kind = "dpm" if self.head == "dpm" else "metric_depth"

    @property
    def has_sigma(self) -> bool:
        """The DPM's spread is sigma; the regression baseline has none."""
        return self.head == "dpm"


class TieKDStudent(DepthModel):
    """Monocular network: left (B, 3, H, W) -> dpm, depth, sigma (or depth) at full resolution."""

    def __init__(self, cfg: TieKDStudentCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained)
        self.decoder = UNetDecoder(self.encoder.feature_info, cfg.decoder_channels)
        channels = self.decoder.out_info[0]["channels"]
        self.head = (DPMHead(channels, cfg.n_bins, cfg.min_depth, cfg.max_depth)
                     if cfg.head == "dpm" else DepthHead(channels, cfg.min_depth, cfg.max_depth))

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        feats = self.decoder(self.encoder(self.prepare(left, "left")))
        out = self.head(upsample_to(feats[0], left, "bilinear", align_corners=False))
        return out if self.cfg.head == "dpm" else {"depth": out}


@register_model("tiekd_student", TieKDStudentCfg)
def tiekd_student(cfg: TieKDStudentCfg) -> TieKDStudent:
    return TieKDStudent(cfg)
