"""DACNN's student and stereo teacher (depth-aware CNN with stereo distillation; METHODS §4).

Both: encoder at output stride 8 (dilated; ResNeSt-50 in the paper) -> ASPP (rates 1, 6, 12,
18) -> a context block -> the guidance branch producing depth guidance g1, g2, g3 at 1/8, 1/4,
1/2 -> the depth-aware decoder (a DepthAwareBlock at each scale guided by g_k, upsampling
x2 + 3x3 conv + ReLU, skips from the first two encoder blocks) -> depth at full resolution.

- Student (§3.2): context = Asymmetric Pyramid Non-local block on the image feature (O_A).
- Teacher: the same encoder and ASPP on left and right (shared weights); context = a
  correlation layer (d = 0..24 at 1/8 scale, i.e. 192 px) + 3x3 conv + BN, concatenated with
  (3x3 conv + BN)(f_l) (O_C). The guidance branch and decoder are the same, so teacher and
  student guidance have the same shapes for the KL loss (eq. 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from depth_kd_core.kernels import KernelImpl, correlation1d
from depth_kd_core.layers.aspp import ASPP, DACNN_ASPP_RATES
from depth_kd_core.layers.blocks import DepthHead, upsample_to
from depth_kd_core.layers.depth_aware import DACNN_DILATIONS, DepthAwareBlock
from depth_kd_core.layers.nonlocal_block import APNonLocal
from depth_kd_core.models.base import DepthModel, ModelCfg
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model

DACNN_MAX_DISP = 24  # at 1/8 scale = 192 px of the input (§3.2)


@dataclass
class DacnnCfg(ModelCfg):
    """DACNN network.

    Attributes:
        aspp_channels: ASPP output width.
        context_channels: width of O_A / O_C.
        guidance_channels: channels G of each guidance map.
        decoder_channels: decoder widths at 1/2, 1/4, 1/8 (finest first).
        dilations: depth-aware block dilations (§3.3).
        kernel: depth-aware weighting, "gaussian" exp(-a||dg||^2) or "l1" exp(-a||dg||_1).
        impl: depth-aware conv / correlation implementation ("auto": Triton on CUDA).
        max_disp, symmetric_corr: correlation range (25 channels, or 49 when symmetric).
        depth_head: sigmoid -> depth mapping, "linear" (supervised) or "inverse" (photometric).
    """

    encoder: str = "resnest50d"
    aspp_channels: int = 256
    context_channels: int = 128
    guidance_channels: int = 8
    decoder_channels: tuple[int, int, int] = (64, 128, 256)
    dilations: tuple[int, ...] = DACNN_DILATIONS
    kernel: Literal["gaussian", "l1"] = "gaussian"
    impl: KernelImpl = "auto"
    depth_head: Literal["linear", "inverse"] = "linear"  # "inverse" for self-supervision
    max_disp: int = DACNN_MAX_DISP
    symmetric_corr: bool = False
    input_height: int = 256  # DACNN trains on 256 x 512 crops
    input_width: int = 512


def conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(True))


class GuidanceBranch(nn.Module):
    """O (B, C, H/8, W/8) -> [g1 (1/8), g2 (1/4), g3 (1/2)], each (B, G, h, w) (Fig. 2)."""

    def __init__(self, in_ch: int, guidance_ch: int, mid_ch: int = 64) -> None:
        super().__init__()
        self.trunk = conv_bn_relu(in_ch, mid_ch)
        self.up1, self.up2 = conv_bn_relu(mid_ch, mid_ch), conv_bn_relu(mid_ch, mid_ch)
        self.heads = nn.ModuleList(nn.Conv2d(mid_ch, guidance_ch, 3, padding=1) for _ in range(3))

    def forward(self, o: torch.Tensor) -> list[torch.Tensor]:
        x = self.trunk(o)
        g1 = self.heads[0](x)
        x = self.up1(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        g2 = self.heads[1](x)
        x = self.up2(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return [g1, g2, self.heads[2](x)]


class DepthAwareDecoder(nn.Module):
    """O at 1/8 + guidance + encoder skips (1/2, 1/4) -> depth at full resolution (Fig. 2)."""

    def __init__(self, cfg: DacnnCfg, skip_channels: tuple[int, int]) -> None:
        super().__init__()
        c2, c4, c8 = cfg.decoder_channels
        block = lambda i, o: DepthAwareBlock(i, o, dilations=cfg.dilations, kernel=cfg.kernel,  # noqa: E731
                                             impl=cfg.impl)
        self.block8 = block(cfg.context_channels, c8)
        self.up4 = conv_relu(c8, c4)
        self.block4 = block(c4 + skip_channels[1], c4)
        self.up2 = conv_relu(c4, c2)
        self.block2 = block(c2 + skip_channels[0], c2)
        self.up1 = conv_relu(c2, c2)
        self.head = DepthHead(c2, cfg.min_depth, cfg.max_depth, cfg.depth_head)

    def forward(self, o: torch.Tensor, guidance: list[torch.Tensor], skip2: torch.Tensor,
                skip4: torch.Tensor) -> torch.Tensor:
        g1, g2, g3 = guidance
        x = F.relu(self.block8(o, g1))
        x = self.up4(upsample_to(x, skip4, "bilinear", align_corners=False))
        x = F.relu(self.block4(torch.cat([x, skip4], 1), g2))
        x = self.up2(upsample_to(x, skip2, "bilinear", align_corners=False))
        x = F.relu(self.block2(torch.cat([x, skip2], 1), g3))
        x = self.up1(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.head(x)


def conv_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(True))


class DacnnNet(DepthModel):
    """Shared body of the student (monocular) and the teacher (stereo)."""

    def __init__(self, cfg: DacnnCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained, output_stride=8)
        ch = self.encoder.channels
        if self.encoder.strides[:3] != [2, 4, 8]:
            raise ValueError(f"dacnn needs an encoder with levels at 1/2, 1/4, 1/8; "
                             f"'{cfg.encoder}' has strides {self.encoder.strides}")
        self.aspp = ASPP(ch[-1], cfg.aspp_channels, DACNN_ASPP_RATES)
        self.guidance = GuidanceBranch(cfg.context_channels, cfg.guidance_channels)
        self.decoder = DepthAwareDecoder(cfg, (ch[0], ch[1]))

    def features(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.encoder(image)
        return feats, self.aspp(feats[-1])

    def decode(self, feats: list[torch.Tensor], context: torch.Tensor) -> dict:
        guidance = self.guidance(context)
        depth = self.decoder(context, guidance, feats[0], feats[1])
        return {"depth": depth, "guidance": guidance, "features": [context]}


class DacnnStudent(DacnnNet):
    """left (B, 3, H, W) -> depth (B, 1, H, W) metres, guidance g1..g3, features [O_A]."""

    def __init__(self, cfg: DacnnCfg) -> None:
        super().__init__(cfg)
        self.context = APNonLocal(cfg.aspp_channels, cfg.context_channels)

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        feats, f_s = self.features(self.prepare(left, "left"))
        out = self.decode(feats, self.context(f_s))
        out["depth"] = upsample_to(out["depth"], left, "bilinear", align_corners=False)
        return out


class DacnnStereoTeacher(DacnnNet):
    """(left, right) -> depth of the left view, guidance g1..g3, features [O_C]."""

    def __init__(self, cfg: DacnnCfg) -> None:
        super().__init__(cfg)
        n_corr = (2 if cfg.symmetric_corr else 1) * cfg.max_disp + 1
        half = cfg.context_channels // 2
        self.corr_conv = nn.Sequential(nn.Conv2d(n_corr, half, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(half))
        self.left_conv = nn.Sequential(
            nn.Conv2d(cfg.aspp_channels, cfg.context_channels - half, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.context_channels - half))

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        if right is None:
            raise ValueError(f"{self.cfg.name} is a stereo teacher: pass the right image")
        feats, f_l = self.features(self.prepare(left, "left"))
        _, f_r = self.features(self.prepare(right, "right"))
        # "taps" and "chunked" are depth-aware-conv variants; the correlation has neither
        corr_impl = self.cfg.impl if self.cfg.impl in ("auto", "reference", "triton") else "auto"
        corr = correlation1d(f_l, f_r, max_disp=self.cfg.max_disp,
                             symmetric=self.cfg.symmetric_corr, impl=corr_impl)
        o_c = torch.cat([self.corr_conv(corr), self.left_conv(f_l)], dim=1)
        out = self.decode(feats, o_c)
        out["depth"] = upsample_to(out["depth"], left, "bilinear", align_corners=False)
        return out


@register_model("dacnn_student", DacnnCfg)
def dacnn_student(cfg: DacnnCfg) -> DacnnStudent:
    return DacnnStudent(cfg)


@dataclass
class DacnnTeacherCfg(DacnnCfg):
    stereo_input: bool = True


@register_model("stereo_corr_teacher", DacnnTeacherCfg)
def stereo_corr_teacher(cfg: DacnnTeacherCfg) -> DacnnStereoTeacher:
    return DacnnStereoTeacher(cfg)
