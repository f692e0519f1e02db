"""Depth probability maps (TIE-KD): 257 uniform depth bins, expectation and spread.

Bins (METHODS §2): edges e = linspace(1e-3, 80, 258) m, centres c_i = (e_i + e_{i+1}) / 2.
A DPM is a softmax over the bin axis; depth = sum_i DPM_i c_i (TIE-KD eq. 3), and its spread
sigma = sqrt(sum_i DPM_i (c_i - depth)^2) is the student's uncertainty in metres.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

TIEKD_BINS = 257
TIEKD_MIN_DEPTH_M = 1e-3
TIEKD_MAX_DEPTH_M = 80.0


def bin_centres(n_bins: int = TIEKD_BINS, min_depth: float = TIEKD_MIN_DEPTH_M,
                max_depth: float = TIEKD_MAX_DEPTH_M, device=None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_bins,) metres, centres of uniform bins over [min_depth, max_depth]."""
    edges = torch.linspace(min_depth, max_depth, n_bins + 1, device=device, dtype=torch.float64)
    return ((edges[:-1] + edges[1:]) / 2).to(dtype)


def dpm_expectation(dpm: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Map dpm (B, K, H, W) probabilities -> (B, 1, H, W) expected depth, metres (eq. 3)."""
    return (dpm * centres.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)


def dpm_std(dpm: torch.Tensor, centres: torch.Tensor, depth: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Return the standard deviation of the DPM, (B, 1, H, W) metres."""
    depth = dpm_expectation(dpm, centres) if depth is None else depth
    var = (dpm * (centres.view(1, -1, 1, 1) - depth) ** 2).sum(dim=1, keepdim=True)
    return var.clamp_min(0).sqrt()


def _plain_softmax_moments(logits: torch.Tensor, centres: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bins-last logits (..., K) -> softmax (..., K), expectation and spread (..., 1).

    The spread stays two-pass, sum_i p_i (c_i - depth)^2: E[c^2] - E[c]^2 cancels
    catastrophically in fp32 for a peaked DPM.
    """
    dpm = torch.softmax(logits, dim=-1)
    depth = torch.matmul(dpm, centres.unsqueeze(-1))
    deviation = (centres - depth).square_()
    var = torch.matmul(dpm.unsqueeze(-2), deviation.unsqueeze(-1)).squeeze(-1)
    return dpm, depth, var.clamp_min(0).sqrt()


class _SoftmaxMoments(torch.autograd.Function):
    """logits (..., K) -> (softmax, expectation, spread) with one fused backward.

    The forward is :func:`_plain_softmax_moments`. The backward adds the three outputs'
    gradients into one per-bin gradient g_i = g_p,i + g_depth c_i + g_sigma (c_i - depth)^2
    / (2 sigma) (the expectation's own dependence on p adds nothing to the spread's: it is
    sum_i p_i (c_i - depth) = 0) and applies the softmax Jacobian once, in place:
    p_i (g_i - sum_j p_j g_j). Autograd's graph of the same formulas allocates and traverses
    one bins-sized tensor per elementary op and was most of a TIE-KD training step on a CPU.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, centres: torch.Tensor):
        dpm, depth, sigma = _plain_softmax_moments(logits, centres)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(dpm, centres, depth, sigma)
        return dpm, depth, sigma

    @staticmethod
    @once_differentiable
    def backward(ctx, g_dpm, g_depth, g_sigma):
        dpm, centres, depth, sigma = ctx.saved_tensors
        g = torch.zeros_like(dpm) if g_depth is None else g_depth * centres
        if g_dpm is not None:
            g.add_(g_dpm)
        if g_sigma is not None:
            per_var = torch.where(sigma > 0, g_sigma / (2 * sigma), torch.zeros_like(sigma))
            g.addcmul_(per_var, (centres - depth).square())
        g.sub_(torch.matmul(g.unsqueeze(-2), dpm.unsqueeze(-1)).squeeze(-1)).mul_(dpm)
        return g, None


def softmax_moments(logits: torch.Tensor, centres: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bins-last logits (..., K) -> dpm (..., K), depth (..., 1) metres, sigma (..., 1) metres.

    With gradients the fused :class:`_SoftmaxMoments`; without (inference, export) the same
    forward as plain ops, so exported graphs hold standard operators. In float32 at least,
    also under autocast: a 257-bin softmax and its spread lose most digits in half precision.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits, centres = logits.to(dtype), centres.to(dtype)
    with torch.autocast(logits.device.type, enabled=False):
        if torch.is_grad_enabled() and logits.requires_grad:
            return _SoftmaxMoments.apply(logits, centres)
        return _plain_softmax_moments(logits, centres)


class DPMHead(nn.Module):
    """1x1 conv -> softmax over bins: (B, C, H, W) -> dict(dpm, depth, sigma).

    The same arithmetic as ``softmax(conv(x), dim=1)`` -> :func:`dpm_expectation` ->
    :func:`dpm_std` (the specification; tests compare values and gradients), laid out with
    the bins last: the 1x1 conv is a ``linear`` on (B, H, W, C), the softmax and both moments
    reduce a contiguous axis and the expectation is a matrix-vector product. The bins-on-dim-1
    version reduced a strided axis in every pass and was most of a CPU forward (and its
    ONNX graph's ReduceSum over axis 1 ran slower still). In training the softmax and moments
    are one autograd node with a fused backward (:func:`softmax_moments`). ``dpm`` is
    returned as a (B, K, H, W) view of the bins-last tensor (channels-last strides; the
    values are the softmax over bins).
    """

    def __init__(self, in_ch: int, n_bins: int = TIEKD_BINS, min_depth: float = TIEKD_MIN_DEPTH_M,
                 max_depth: float = TIEKD_MAX_DEPTH_M) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, n_bins, 1)
        self.register_buffer("centres", bin_centres(n_bins, min_depth, max_depth),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = F.linear(x.permute(0, 2, 3, 1), self.conv.weight.flatten(1), self.conv.bias)
        dpm, depth, sigma = softmax_moments(logits, self.centres)  # (B, H, W, K | 1 | 1)
        to_bchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
        return {"dpm": to_bchw(dpm), "depth": to_bchw(depth), "sigma": to_bchw(sigma)}
