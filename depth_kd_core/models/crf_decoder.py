"""A NeWCRFs-style decoder (Yuan et al., CVPR 2022), the base of ADU-Depth's student.

From the coarsest level up: a pyramid-pooling head starts the state at 1/32; each level then
upsamples the state and refines it with a neural-window fully-connected CRF block: inside
non-overlapping windows, queries and keys come from the image (encoder) feature — the
pairwise potential — and values from the state — the unary term — with a learned relative
position bias; an MLP follows. This is a compact re-implementation of the idea, not the
authors' code (ADU-Depth has no public code; METHODS §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_kd_core.layers.blocks import ConvBlock

PSP_SIZES = (1, 2, 3, 6)


class PyramidPooling(nn.Module):
    """PSP head: (B, C, H, W) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, sizes: tuple[int, ...] = PSP_SIZES) -> None:
        super().__init__()
        mid = max(in_ch // 4, 16)
        self.sizes = sizes
        self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(in_ch, mid, 1), nn.ReLU(True))
                                    for _ in sizes)
        self.fuse = ConvBlock(in_ch + mid * len(sizes), out_ch, act="relu",
                              padding_mode="zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [F.interpolate(stage(F.adaptive_avg_pool2d(x, s)), size=x.shape[-2:],
                                mode="bilinear", align_corners=False)
                  for s, stage in zip(self.sizes, self.stages)]
        return self.fuse(torch.cat([x, *pooled], dim=1))


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, C, H, W) with H, W multiples of w -> (B * nW, w * w, C)."""
    B, C, H, W = x.shape
    x = x.view(B, C, H // w, w, W // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, C)


def _merge(t: torch.Tensor, B: int, H: int, W: int, w: int) -> torch.Tensor:
    """Inverse of ``_windows``."""
    C = t.shape[-1]
    t = t.view(B, H // w, W // w, w, w, C).permute(0, 5, 1, 3, 2, 4)
    return t.reshape(B, C, H, W)


class WindowCRFBlock(nn.Module):
    """State x (B, dim, H, W), image feature e (B, enc_ch, H, W) -> refined state."""

    def __init__(self, enc_ch: int, dim: int, heads: int = 4, window: int = 7) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.enc_proj = nn.Conv2d(enc_ch, dim, 1)
        self.norm_e, self.norm_x, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim), \
            nn.LayerNorm(dim)
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.rel_bias = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                            indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + window - 1
        self.register_buffer("rel_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        w = self.window
        pad_h, pad_w = (-H) % w, (-W) % w
        f = F.pad(self.enc_proj(e), (0, pad_w, 0, pad_h))
        xp = F.pad(x, (0, pad_w, 0, pad_h))
        valid = F.pad(torch.ones(1, 1, H, W, device=x.device, dtype=x.dtype),
                      (0, pad_w, 0, pad_h))
        fe, xs = _windows(f, w), _windows(xp, w)
        key_mask = _windows(valid.expand(B, -1, -1, -1), w)[..., 0] > 0  # nW*B x w*w
        q, k = self.qk(self.norm_e(fe)).chunk(2, dim=-1)
        v = self.v(self.norm_x(xs))
        split = lambda t: t.view(t.shape[0], -1, self.heads, C // self.heads).transpose(1, 2)  # noqa: E731
        bias = self.rel_bias[:, self.rel_index].unsqueeze(0)  # 1 x h x N x N
        mask = bias.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        out = _attention(split(q), split(k), split(v), mask)
        out = self.proj(out.transpose(1, 2).reshape(xs.shape))
        xs = xs + out
        xs = xs + self.mlp(self.norm_out(xs))
        return _merge(xs, B, H + pad_h, W + pad_w, w)[:, :, :H, :W]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
               ) -> torch.Tensor:
    """Scaled dot-product attention, (nW*B, h, N, d) each; ``mask`` is added to the logits.

    While exporting to ONNX the same arithmetic is written out: torch's exporter decomposes
    ``scaled_dot_product_attention`` into a tensor whose strides differ from the ones it
    declared, and the reshape after it then fails (torch 2.14).
    """
    if not torch.onnx.is_in_onnx_export():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5 + mask
    return torch.softmax(logits, dim=-1) @ v


class CRFDecoder(nn.Module):
    """Encoder features (finest first) -> decoder features at the same strides (finest first).

    Args:
        feature_info: encoder levels ``[{"channels", "stride"}, ...]``, finest first.
        channels: state width per level (finest first).
        heads, window: attention heads and window size of every CRF block.
    """

    def __init__(self, feature_info: list[dict], channels=(64, 128, 256, 512), heads: int = 4,
                 window: int = 7) -> None:
        super().__init__()
        enc_ch = [f["channels"] for f in feature_info]
        channels = list(channels)[-len(enc_ch):]
        if len(channels) != len(enc_ch):
            raise ValueError(f"need {len(enc_ch)} decoder widths, got {len(channels)}")
        self.psp = PyramidPooling(enc_ch[-1], channels[-1])
        self.blocks = nn.ModuleList(WindowCRFBlock(c_e, c, heads, window)
                                    for c_e, c in zip(enc_ch, channels))
        self.reduce = nn.ModuleList(nn.Conv2d(channels[i + 1], channels[i], 1)
                                    for i in range(len(channels) - 1))
        self.out_info = [{"channels": c, "stride": f["stride"]}
                         for c, f in zip(channels, feature_info)]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.psp(feats[-1])
        outs = [self.blocks[-1](x, feats[-1])]
        for i in reversed(range(len(feats) - 1)):
            x = F.interpolate(outs[-1], size=feats[i].shape[-2:], mode="bilinear",
                              align_corners=False)
            outs.append(self.blocks[i](self.reduce[i](x), feats[i]))
        return outs[::-1]
