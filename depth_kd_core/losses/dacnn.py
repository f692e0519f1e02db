"""DACNN's guidance-transfer loss (eq. 6) and student loss weights (eq. 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# eq. 7: L_S = L_pixel + alpha L_smooth + beta L_proxy + gamma L_guidance
DACNN_W_SMOOTH, DACNN_W_PROXY, DACNN_W_GUIDANCE = 0.01, 0.01, 1000.0


def guidance_kl(teacher: list[torch.Tensor], student: list[torch.Tensor],
                reduction: str) -> torch.Tensor:
    """sum_k KL(p^t_k || p^s_k), p = softmax(g) (DACNN eq. 6).

    Multi-channel guidance (B, G, H, W), G > 1: softmax over channels at each pixel, KL summed
    over channels and averaged over pixels. Single-channel guidance: softmax over the H*W
    pixels of each map, KL summed over pixels and averaged over the batch (METHODS §0).

    ``reduction`` (no default: the recipe's config chooses): "pixel" is the KL of each
    distribution, averaged (above); "element" divides it by the distribution's size (G, or
    H*W), the mean over all B*G*H*W terms that PyTorch's ``KLDivLoss`` gives by default. The
    paper leaves the normalisation unsaid (METHODS §4); its weight 1000 means G times less of
    the loss under "element".
    """
    if reduction not in ("pixel", "element"):
        raise ValueError(f"guidance_kl: reduction must be 'pixel' or 'element', got {reduction!r}")
    total = teacher[0].new_zeros(())
    for g_t, g_s in zip(teacher, student, strict=True):
        if g_t.shape != g_s.shape:
            raise ValueError(f"guidance shapes differ: teacher {tuple(g_t.shape)}, "
                             f"student {tuple(g_s.shape)}")
        if g_t.shape[1] == 1:  # single channel: a distribution over the H*W pixels
            g_t, g_s = g_t.flatten(1), g_s.flatten(1)
        log_p_t = F.log_softmax(g_t, dim=1)  # dim 1: channels, or the flattened pixels
        log_p_s = F.log_softmax(g_s, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
        size = g_t.shape[1] if reduction == "element" else 1
        total = total + kl.mean() / size
    return total
