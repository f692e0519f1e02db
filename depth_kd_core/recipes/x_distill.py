"""X-Distill (Cai et al., BMVC 2021; METHODS §5).

Monodepth2 video self-supervision plus cross-task distillation from a frozen segmentation
teacher through a small trainable depth-to-segmentation (D2S) network and X-Distill's 4
depth-compatible class groups.

L = L_monodepth2 + lambda_D2S(t) * CE(D2S(disp_0), regroup(argmax teacher)), with lambda_D2S
ramped linearly from 0 to 0.005 over training (eq. 4, §4.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from depth_kd_core.data.semantics import XDISTILL_GROUPS
from depth_kd_core.losses.xdistill import D2S_FINAL_WEIGHT, d2s_loss, d2s_weight
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.selfsup_mono import SelfsupMono, SelfsupMonoCfg

D2S_WIDTH = 64  # METHODS §0


class D2SNet(nn.Module):
    """[3x3 conv -> BN -> ReLU] x 2 -> 1x1 conv: (B, 1, H, W) disparity -> (B, 4, H, W) logits."""

    def __init__(self, width: int = D2S_WIDTH, groups: int = len(XDISTILL_GROUPS)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(True), nn.Conv2d(width, groups, 1))

    def forward(self, disp: torch.Tensor) -> torch.Tensor:
        return self.net(disp)


@dataclass
class XDistillCfg(SelfsupMonoCfg):
    """X-Distill recipe settings.

    Attributes: d2s_width; d2s_final_weight (lambda_D2S at the end of training);
    ramp: linear ramp (paper) or constant weight (ablation).
    """

    d2s_width: int = D2S_WIDTH
    d2s_final_weight: float = D2S_FINAL_WEIGHT
    ramp: bool = True


@register_recipe("x_distill", XDistillCfg)
class XDistill(SelfsupMono):
    DEFAULT_TEACHER = "segmentation_teacher"

    def __init__(self, cfg, model_cfg_=None, teacher_cfg=None) -> None:
        super().__init__(cfg, model_cfg_, teacher_cfg)
        self.extras["d2s"] = D2SNet(cfg.d2s_width)

    @torch.no_grad()
    def teacher_labels(self, batch: dict) -> torch.Tensor:
        """(B, H, W) Cityscapes trainIds predicted by the frozen teacher (hard labels)."""
        return self.teacher_output(batch)["semantics"].argmax(dim=1)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        out = self.predict(batch)
        losses = self.video_loss(out, batch)
        logits = self.extras["d2s"](out["sigmoid_disp"][0])
        l_d2s = d2s_loss(logits, self.teacher_labels(batch))
        weight = (d2s_weight(step, self.total_steps, self.cfg.d2s_final_weight) if self.cfg.ramp
                  else self.cfg.d2s_final_weight)
        losses.update(loss=losses["loss"] + weight * l_d2s, d2s=l_d2s,
                      d2s_weight=torch.tensor(weight))
        return losses
