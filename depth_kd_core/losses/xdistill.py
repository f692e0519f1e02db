"""X-Distill's cross-task loss (Cai et al., BMVC 2021; eq. 3-4, METHODS §5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depth_kd_core.data.semantics import IGNORE_INDEX, regroup_labels

D2S_FINAL_WEIGHT = 0.005  # lambda_D2S reaches this at the end of training (§4.1)


def d2s_loss(logits: torch.Tensor, teacher_labels: torch.Tensor) -> torch.Tensor:
    """Pixel-mean cross-entropy of D2S logits (B, 4, H, W) against the teacher's hard labels.

    ``teacher_labels`` (B, H, W) or (B, 1, H, W) are Cityscapes trainIds; they are regrouped
    into X-Distill's 4 depth-compatible groups, void (255) is ignored.
    """
    if teacher_labels.dim() == 4:
        teacher_labels = teacher_labels[:, 0]
    groups = regroup_labels(teacher_labels)
    if (groups != IGNORE_INDEX).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, groups, ignore_index=IGNORE_INDEX)


def d2s_weight(step: int, total_steps: int, final: float = D2S_FINAL_WEIGHT) -> float:
    """Linear ramp of lambda_D2S from 0 at step 0 to ``final`` at the last step."""
    if total_steps <= 1:
        return final
    return final * min(max(step, 0), total_steps - 1) / (total_steps - 1)
