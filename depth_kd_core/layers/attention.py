"""ADU-Depth's attention adaptation (eq. 1) and restoring function g(F; s) for distillation.

Both are trainable parts of the distillation recipe, not of the deployed student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionAdapter(nn.Module):
    """F^s = softmax(Q K^T / sqrt(C)) V over the tokens of one feature level (ADU eq. 1).

    Q, K, V are learned linear maps of the student's tokens (C_s -> C_t). On large levels the
    keys/values come from an average-pooled copy (``kv_stride``) so a 352x1120 input fits in
    memory (METHODS §0). x: (B, C_s, H, W) -> (B, C_t, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, kv_stride: int = 1) -> None:
        super().__init__()
        self.q = nn.Linear(in_ch, out_ch)
        self.k = nn.Linear(in_ch, out_ch)
        self.v = nn.Linear(in_ch, out_ch)
        self.kv_stride = kv_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # B x HW x C
        kv = x if self.kv_stride == 1 else F.avg_pool2d(x, self.kv_stride, ceil_mode=True)
        kv_tokens = kv.flatten(2).transpose(1, 2)
        q, k, v = self.q(tokens), self.k(kv_tokens), self.v(kv_tokens)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1))
        return out.squeeze(1).transpose(1, 2).reshape(B, -1, H, W)


class RestoreBlock(nn.Module):
    """g(F; s): residual bottleneck (1x1 -> 3x3 -> 1x1, skip) restoring teacher-like features.

    METHODS §0 (after Yang et al., ECCV 2022, ref. [57] of ADU-Depth). (B, C, H, W) -> same.
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(channels // 2, 8)
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
