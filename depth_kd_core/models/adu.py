"""ADU-Depth's student and its left+right concatenated teacher (Wu et al., CoRL 2023; METHODS §3).

Student: encoder (4 levels, 1/4 .. 1/32) -> NeWCRFs-style window-attention decoder (or a lighter
U-Net decoder) -> depth head (3x3 conv, sigmoid x max_depth) at the finest decoder level,
upsampled to the input, plus the UEM branch predicting s = log sigma^2. It exposes 4 encoder
and 4 decoder feature levels for feature distillation.

Teacher: the same network whose first layer takes 6 channels (left and right images
concatenated), trained with SILog only and then frozen (ADU §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from depth_kd_core.layers.blocks import DepthHead
from depth_kd_core.layers.uncertainty import (
    UEM_S_MAX,
    UEM_S_MIN,
    UncertaintyHead,
    sigma_from_log_var,
)
from depth_kd_core.models.base import DepthModel, ModelCfg
from depth_kd_core.models.crf_decoder import CRFDecoder
from depth_kd_core.models.decoders import UNetDecoder
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model

ADU_LEVELS = 4  # feature levels distilled on each side (encoder and decoder)


@dataclass
class AduCfg(ModelCfg):
    """ADU-Depth network.

    Attributes:
        decoder: "crf" (NeWCRFs-style attention) or "unet" (lighter convolutional decoder).
        decoder_channels: width per level, finest first.
        heads, window: attention heads and window size of the CRF decoder.
        uncertainty: build the UEM branch (students); teachers train without it.
        depth_head: sigmoid -> depth mapping, "linear" (supervised) or "inverse" (photometric).
        s_min, s_max: range of s = log sigma^2 (METHODS §0).
        sigma_mode: how sigma in metres is read from s (see layers.uncertainty).
    """

    encoder: str = "swin_tiny_s4"
    decoder: Literal["crf", "unet"] = "crf"
    decoder_channels: tuple[int, ...] = (64, 128, 256, 512)
    heads: int = 4
    window: int = 7
    uncertainty: bool = True
    depth_head: Literal["linear", "inverse"] = "linear"  # "inverse" for self-supervision
    s_min: float = UEM_S_MIN
    s_max: float = UEM_S_MAX
    sigma_mode: Literal["laplace", "gaussian"] = "laplace"
    input_height: int = 352
    input_width: int = 1120

    @property
    def has_sigma(self) -> bool:
        """The UEM branch predicts sigma."""
        return self.uncertainty


class AduDepthNet(DepthModel):
    """Encoder-decoder depth network with optional UEM; 3 or 6 input channels."""

    def __init__(self, cfg: AduCfg) -> None:
        super().__init__(cfg)
        in_chans = 6 if cfg.stereo_input else 3
        probe = Encoder(cfg.encoder, pretrained=False, in_chans=in_chans)
        drop = max(len(probe.feature_info) - ADU_LEVELS, 0)  # keep the 4 coarsest levels
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained, in_chans=in_chans,
                               drop_first=drop)
        info = self.encoder.feature_info
        if cfg.decoder == "crf":
            self.decoder = CRFDecoder(info, cfg.decoder_channels, cfg.heads, cfg.window)
        else:
            self.decoder = UNetDecoder(info, cfg.decoder_channels, act="relu")
        finest = self.decoder.out_info[0]["channels"]
        self.depth_head = DepthHead(finest, cfg.min_depth, cfg.max_depth, cfg.depth_head)
        self.uem = UncertaintyHead(finest, cfg.s_min, cfg.s_max) if cfg.uncertainty else None

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context
                ) -> dict:
        x = self.prepare(left, "left")
        if self.cfg.stereo_input:
            if right is None:
                raise ValueError(f"{self.cfg.name} is a stereo teacher: pass the right image")
            x = torch.cat([x, self.prepare(right, "right")], dim=1)
        enc = self.encoder(x)
        dec = self.decoder(enc)
        size = left.shape[-2:]
        depth = F.interpolate(self.depth_head(dec[0]), size=size, mode="bilinear",
                              align_corners=False)
        out = {"depth": depth, "features": [*enc, *dec]}
        if self.uem is not None:
            log_var = F.interpolate(self.uem(dec[0]), size=size, mode="bilinear",
                                    align_corners=False)
            out["log_var"] = log_var
            out["sigma"] = sigma_from_log_var(log_var, self.cfg.sigma_mode)
        return out


@register_model("adu_student", AduCfg)
def adu_student(cfg: AduCfg) -> AduDepthNet:
    """ADU-Depth student: monocular, with UEM."""
    return AduDepthNet(cfg)


@dataclass
class AduTeacherCfg(AduCfg):
    """The teacher differs only by its 6-channel input and no UEM branch."""

    stereo_input: bool = True
    uncertainty: bool = False


@register_model("stereo_concat_teacher", AduTeacherCfg)
def stereo_concat_teacher(cfg: AduTeacherCfg) -> AduDepthNet:
    """ADU-Depth teacher: left and right concatenated on the channel axis."""
    if not cfg.stereo_input:
        raise ValueError("stereo_concat_teacher needs stereo_input=true")
    return AduDepthNet(cfg)
