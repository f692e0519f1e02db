"""Decoders that build themselves from an encoder's ``feature_info``.

``UNetDecoder`` is Monodepth2's DepthDecoder generalised to any encoder: from the coarsest
level up, each stage is conv -> x2 nearest upsample -> concat the encoder skip -> conv, so
stage i outputs features at half the stride of encoder level i.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_kd_core.layers.blocks import ConvBlock, upsample_to

MONODEPTH_DECODER_CHANNELS = (16, 32, 64, 128, 256)  # Monodepth2 num_ch_dec


class UNetDecoder(nn.Module):
    """Encoder features (finest first) -> decoder features (finest first).

    Args:
        feature_info: encoder ``[{"channels", "stride"}, ...]``, finest first.
        channels: decoder width per encoder level (finest first); the last ``len(feature_info)``
            values are used if more are given.
        act: activation of the conv blocks (Monodepth2 uses ELU).

    ``out_info[i]`` gives channels and stride of output i; strides are encoder strides / 2.
    """

    def __init__(self, feature_info: list[dict], channels=MONODEPTH_DECODER_CHANNELS,
                 act: str = "elu", norm: bool = False) -> None:
        super().__init__()
        enc_ch = [f["channels"] for f in feature_info]
        strides = [f["stride"] for f in feature_info]
        channels = list(channels)[-len(enc_ch):]
        if len(channels) != len(enc_ch):
            raise ValueError(f"need {len(enc_ch)} decoder widths, got {len(channels)}")
        self.pre, self.post = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(enc_ch))):
            in_ch = enc_ch[-1] if i == len(enc_ch) - 1 else channels[i + 1]
            self.pre.append(ConvBlock(in_ch, channels[i], act=act, norm=norm))
            skip = enc_ch[i - 1] if i > 0 else 0
            self.post.append(ConvBlock(channels[i] + skip, channels[i], act=act, norm=norm))
        self.out_info = [{"channels": c, "stride": s // 2} for c, s in zip(channels, strides)]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = feats[-1]
        outs = []
        for k, (pre, post) in enumerate(zip(self.pre, self.post)):
            i = len(feats) - 1 - k
            x = F.interpolate(pre(x), scale_factor=2, mode="nearest")
            if i > 0:
                skip = feats[i - 1]
                x = torch.cat([upsample_to(x, skip), skip], dim=1)
            x = post(x)
            outs.append(x)
        return outs[::-1]
