"""DACNN (ICIP-style stereo-to-mono distillation; METHODS §4).

A depth-aware student taught by a stereo teacher with a correlation layer, through its depth
and its depth guidance.

L_S = L_pixel + 0.01 L_smooth + 0.01 L_proxy + 1000 L_guidance (eq. 7): L_pixel is L1 on valid
ground truth (eq. 3), L_smooth edge-aware smoothness of the depth (eq. 4), L_proxy L1 to the
teacher's depth over all pixels (eq. 5), L_guidance the KL divergence between teacher and
student guidance at the three scales (eq. 6), averaged over every guidance element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from depth_kd_core.losses.dacnn import DACNN_W_GUIDANCE, DACNN_W_PROXY, DACNN_W_SMOOTH, guidance_kl
from depth_kd_core.losses.depth import l1_loss
from depth_kd_core.recipes.base import Recipe
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.supervised import SupervisedCfg, supervised_loss


@dataclass
class DacnnRecipeCfg(SupervisedCfg):
    """eq. 7 weights (alpha smoothness, beta proxy, gamma guidance)."""

    loss: Literal["l1", "silog"] = "l1"
    smooth_weight: float = DACNN_W_SMOOTH
    w_proxy: float = DACNN_W_PROXY
    w_guidance: float = DACNN_W_GUIDANCE
    # the KL per pixel ("pixel") or per channel too ("element", torch's KLDivLoss default).
    # "pixel" made the guidance term 36 of a total loss of 36-39 and cost the Garg crop
    # (AbsRel 0.159 +- 0.001 against the twin's 0.142); "element" 0.144 +- 0.000, RMSE won
    # (RESULTS.md, issue 18, fourteenth session)
    guidance_reduction: Literal["pixel", "element"] = "element"


@register_recipe("dacnn", DacnnRecipeCfg)
class Dacnn(Recipe):
    DEFAULT_STUDENT = "dacnn_student"
    DEFAULT_TEACHER = "stereo_corr_teacher"
    TEACHER_OUTPUTS = frozenset({"depth", "guidance"})
    NEEDS = frozenset({"depth_gt", "right"})

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        teacher = self.teacher_output(batch)
        out = self.predict(batch)
        losses = supervised_loss(self.cfg, out["depth"], batch,
                                 self.student.cfg.max_depth)
        proxy = l1_loss(out["depth"], teacher["depth"])
        guidance = guidance_kl(teacher["guidance"], out["guidance"],
                               self.cfg.guidance_reduction)
        losses.update(loss=losses["loss"] + self.cfg.w_proxy * proxy
                      + self.cfg.w_guidance * guidance, proxy=proxy, guidance=guidance)
        return losses
