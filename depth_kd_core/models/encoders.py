"""Image encoders from timm (``features_only``), with the channel/stride contract decoders need.

``Encoder(name)`` returns a list of NCHW feature maps, finest first, and publishes
``feature_info`` (channels and stride of each level) so that decoders build themselves from
it. Names:

==================  ============================================================  ==========
name                what                                                          strides
==================  ============================================================  ==========
resnet18/34/50      torchvision-style ResNets                                      2 .. 32
mobilenetv2_100     MobileNetV2 (TIE-KD's student encoder)                         2 .. 32
resnest50d          ResNeSt-50 (DACNN)                                             2 .. 32
swin_tiny           Swin-T with SDFA's 4x4 stride-2 patch embedding (METHODS 1.2)  2 .. 16
swin_tiny_s4        Swin-T with the original stride-4 patch embedding              4 .. 32
test_resnet         timm's 0.4 M-parameter ResNet, for CI                          2 .. 32
test_mobilenet      timm's 0.08 M-parameter EfficientNet, for CI                   2 .. 32
test_swin           a 0.7 M-parameter Swin (stride-2 embedding), for CI            2 .. 16
==================  ============================================================  ==========

Any other timm model name with ``features_only`` support also works. ``output_stride=8``
dilates the last stages of CNN encoders (DeepLab style, used by DACNN's ASPP at 1/8).
``pretrained=True`` downloads ImageNet weights through timm (needs network access).
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

SWIN_TINY = "swin_tiny_patch4_window7_224"
SWIN_TEST_ARGS = {"embed_dim": 24, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2)}


@dataclass(frozen=True)
class EncoderSpec:
    """How a short encoder name maps to timm."""

    timm_name: str
    kwargs: tuple = ()
    swin_stride2: bool = False

    @property
    def is_swin(self) -> bool:
        return self.timm_name.startswith("swin")


ENCODERS: dict[str, EncoderSpec] = {
    "resnet18": EncoderSpec("resnet18"),
    "resnet34": EncoderSpec("resnet34"),
    "resnet50": EncoderSpec("resnet50"),
    "mobilenetv2_100": EncoderSpec("mobilenetv2_100"),
    "resnest50d": EncoderSpec("resnest50d"),
    "swin_tiny": EncoderSpec(SWIN_TINY, (("drop_path_rate", 0.3),), swin_stride2=True),
    "swin_tiny_s4": EncoderSpec(SWIN_TINY),
    "test_resnet": EncoderSpec("test_resnet"),
    "test_mobilenet": EncoderSpec("test_efficientnet"),
    "test_swin": EncoderSpec(SWIN_TINY, tuple(SWIN_TEST_ARGS.items()), swin_stride2=True),
}


def _stride2_patch_embed(model: nn.Module) -> None:
    """Swap Swin's 4x4/4 patch embedding for SDFA's 4x4/2 (padding 1), keeping its weights.

    The kernel shape is unchanged, so ImageNet weights still load into it (METHODS 1.2).
    """
    pe = model.patch_embed
    old = pe.proj
    new = nn.Conv2d(old.in_channels, old.out_channels, 4, stride=2, padding=1)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        new.bias.copy_(old.bias)
    pe.proj = new
    pe.patch_size = (2, 2)


class Encoder(nn.Module):
    """timm feature extractor returning NCHW maps, finest level first.

    Args:
        name: short name from ``ENCODERS`` or any timm model name.
        pretrained: load ImageNet weights (network access needed).
        in_chans: input channels (6 for a left+right concatenated stereo teacher).
        output_stride: 8 or 16 dilates CNN encoders; None keeps the native 32.
        drop_first: skip the first ``drop_first`` levels (e.g. 1 drops the stride-2 stem).
    """

    def __init__(self, name: str, *, pretrained: bool = False, in_chans: int = 3,
                 output_stride: int | None = None, drop_first: int = 0) -> None:
        super().__init__()
        spec = ENCODERS.get(name, EncoderSpec(name))
        kwargs = dict(spec.kwargs)
        if spec.is_swin:
            if output_stride is not None:
                raise ValueError(f"encoder '{name}': output_stride is not supported for Swin")
            kwargs.update(dynamic_img_size=True, strict_img_size=False)
        elif output_stride is not None:
            kwargs["output_stride"] = output_stride
        try:
            self.net = timm.create_model(spec.timm_name, pretrained=pretrained, features_only=True,
                                         in_chans=in_chans, **kwargs)
        except RuntimeError as exc:
            known = ", ".join(ENCODERS)
            raise ValueError(f"encoder '{name}' cannot be built by timm ({exc}); "
                             f"known names: {known}") from exc
        if spec.swin_stride2:
            _stride2_patch_embed(self.net)
        self._channels_last = spec.is_swin  # timm's Swin features are NHWC
        stride_div = 2 if spec.swin_stride2 else 1
        info = self.net.feature_info
        self.feature_info = [
            {"channels": c, "stride": r // stride_div}
            for c, r in zip(info.channels(), info.reduction())
        ][drop_first:]
        self.drop_first = drop_first
        self.name = name

    @property
    def channels(self) -> list[int]:
        return [f["channels"] for f in self.feature_info]

    @property
    def strides(self) -> list[int]:
        return [f["stride"] for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, in_chans, H, W) normalised image(s) -> list of (B, C_l, H/s_l, W/s_l)."""
        feats = self.net(x)
        if self._channels_last:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return list(feats[self.drop_first:])
