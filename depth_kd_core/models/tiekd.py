"""TIE-KD's student: MobileNetV2 encoder -> U-Net decoder -> DPM head (METHODS §2).

The head turns the last decoder feature into a depth probability map over 257 uniform bins
in [1e-3, 80] m; depth is the expectation over bin centres (TIE-KD eq. 3) and sigma, the
DPM's spread, is the uncertainty in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from depth_kd_core.layers.blocks import upsample_to
from depth_kd_core.layers.dpm import TIEKD_BINS, DPMHead
from depth_kd_core.models.base import DepthModel, ModelCfg, OutputKind
from depth_kd_core.models.decoders import UNetDecoder
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model


@dataclass
class TieKDStudentCfg(ModelCfg):
    """TIE-KD student. ``decoder_channels`` per encoder level, finest first."""

    encoder: str = "mobilenetv2_100"
    decoder_channels: tuple[int, ...] = (64, 128, 256, 512, 1024)
    n_bins: int = TIEKD_BINS
    output_kind: OutputKind = "dpm"
    input_height: int = 352
    input_width: int = 704

    @property
    def has_sigma(self) -> bool:
        """The DPM's spread is sigma."""
        return True


class TieKDStudent(DepthModel):
    """Monocular DPM network: left (B, 3, H, W) -> dpm, depth, sigma at full resolution."""

    def __init__(self, cfg: TieKDStudentCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained)
        self.decoder = UNetDecoder(self.encoder.feature_info, cfg.decoder_channels)
        self.head = DPMHead(self.decoder.out_info[0]["channels"], cfg.n_bins, cfg.min_depth,
                            cfg.max_depth)

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        feats = self.decoder(self.encoder(self.prepare(left, "left")))
        return self.head(upsample_to(feats[0], left, "bilinear", align_corners=False))


@register_model("tiekd_student", TieKDStudentCfg)
def tiekd_student(cfg: TieKDStudentCfg) -> TieKDStudent:
    return TieKDStudent(cfg)
