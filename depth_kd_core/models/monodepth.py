"""Monodepth2-style depth and pose networks (METHODS §6): X-Distill's base and the no-KD twin.

``monodepth_student``: encoder -> UNetDecoder -> sigmoid disparity at four scales; depth from
Monodepth2's ``disp_to_depth`` (0.1 .. 100). Trained from video it is relative-scale
(``output_kind="relative_depth"``, evaluated with median scaling); trained from stereo with
the true baseline it is metric.

``pose_net``: a 6-channel encoder on two stacked frames -> pose decoder -> axis-angle and
translation (scaled by 0.01 as in Monodepth2) -> 4x4 transform from the target to the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from depth_kd_core.layers.geometry import (
    MONODEPTH_MAX_DEPTH_M,
    MONODEPTH_MIN_DEPTH_M,
    disp_to_depth,
    pose_to_matrix,
)
from depth_kd_core.models.base import DepthModel, ModelCfg, OutputKind
from depth_kd_core.models.decoders import MONODEPTH_DECODER_CHANNELS, UNetDecoder
from depth_kd_core.models.encoders import Encoder
from depth_kd_core.models.registry import register_model

MONODEPTH_SCALES = 4
POSE_SCALE = 0.01  # Monodepth2 scales the pose decoder's output by 0.01


@dataclass
class MonodepthCfg(ModelCfg):
    """Monodepth2 depth network."""

    encoder: str = "resnet18"
    decoder_channels: tuple[int, ...] = MONODEPTH_DECODER_CHANNELS
    min_depth: float = MONODEPTH_MIN_DEPTH_M
    max_depth: float = MONODEPTH_MAX_DEPTH_M
    output_kind: OutputKind = "relative_depth"


class MonodepthNet(DepthModel):
    """left (B, 3, H, W) -> depth (full resolution) and sigmoid_disp at scales 0..3."""

    def __init__(self, cfg: MonodepthCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained)
        self.decoder = UNetDecoder(self.encoder.feature_info, cfg.decoder_channels)
        info = self.decoder.out_info
        if info[0]["stride"] != 1:
            raise ValueError(f"monodepth_student needs an encoder whose finest stride is 2, "
                             f"'{cfg.encoder}' starts at {2 * info[0]['stride']}")
        self.disp_heads = nn.ModuleList(nn.Conv2d(info[s]["channels"], 1, 3, padding=1,
                                                  padding_mode="reflect")
                                        for s in range(MONODEPTH_SCALES))

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        feats = self.decoder(self.encoder(self.prepare(left, "left")))
        disps = [torch.sigmoid(head(feats[s])) for s, head in enumerate(self.disp_heads)]
        depth = disp_to_depth(disps[0], self.cfg.min_depth, self.cfg.max_depth)
        return {"depth": depth, "sigmoid_disp": disps, "features": feats}


@register_model("monodepth_student", MonodepthCfg)
def monodepth_student(cfg: MonodepthCfg) -> MonodepthNet:
    return MonodepthNet(cfg)


@dataclass
class PoseNetCfg(ModelCfg):
    """Monodepth2's separate pose network (two frames in).

    Attributes: init_forward: translation along the optical axis the untrained network
    predicts for an (earlier, later) pair, in the depth network's units (0: Monodepth2's
    random start). A vehicle camera mostly drives forward; from scratch, and without it, the
    pose net settled on a sideways or backward shift even with the true depth (issue 18).
    """

    encoder: str = "resnet18"
    output_kind: OutputKind = "pose"
    init_forward: float = 0.0


class PoseNet(DepthModel):
    """(target, source) RGB (B, 3, H, W) each -> axisangle, translation (B, 3), T (B, 4, 4).

    ``T`` maps points of the target camera into the source camera.
    """

    def __init__(self, cfg: PoseNetCfg) -> None:
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder, pretrained=cfg.pretrained, in_chans=6)
        c = self.encoder.channels[-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(c, 256, 1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 6, 1),
        )
        with torch.no_grad():  # points move towards a camera that drives forward: t_z < 0
            self.decoder[-1].bias[5] -= cfg.init_forward / POSE_SCALE

    def forward(self, left: torch.Tensor, right: torch.Tensor | None = None, **context) -> dict:
        """``left`` is the target frame, ``right`` the source frame (same camera)."""
        if right is None:
            raise ValueError("pose_net needs two frames: pose_net(target, source)")
        x = torch.cat([self.prepare(left, "target"), self.prepare(right, "source")], dim=1)
        out = self.decoder(self.encoder(x)[-1]).mean(dim=(2, 3)) * POSE_SCALE
        axisangle, translation = out[:, :3], out[:, 3:]
        return {"axisangle": axisangle, "translation": translation,
                "T": pose_to_matrix(axisangle, translation)}


@register_model("pose_net", PoseNetCfg)
def pose_net(cfg: PoseNetCfg) -> PoseNet:
    return PoseNet(cfg)
