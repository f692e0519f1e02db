"""ADU-Depth (Wu et al., CoRL 2023; METHODS §3).

A monocular student distilled from a left+right concatenated teacher.

L = L_b + 0.9 L_umr + 0.6 L_umf + 0.8 L_focal (eq. 9): L_b is SILog on ground truth; L_umf
compares the teacher's 4 encoder + 4 decoder features with the student's after attention
adaptation (eq. 1) and the restoring function g, weighted by the UEM's uncertainty s
(Gaussian, eq. 7); L_umr does the same for depth (Laplace, eq. 8); L_focal is the focal-depth
response loss (eq. 4-5). Adapters and restoring blocks are training-only helpers.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from depth_kd_core.layers.attention import AttentionAdapter, RestoreBlock
from depth_kd_core.losses.adu import (
    ADU_W_FOCAL,
    ADU_W_UMF,
    ADU_W_UMR,
    FOCAL_ALPHA,
    FOCAL_GAMMA,
    focal_depth_loss,
    umf_loss,
    umr_loss,
)
from depth_kd_core.recipes.base import Recipe
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.supervised import SupervisedCfg, supervised_loss


@dataclass
class AduDepthCfg(SupervisedCfg):
    """ADU-Depth recipe settings.

    Attributes: loss weights of eq. 9; focal_alpha/gamma (METHODS §0); kv_stride pools the
    attention adapters' keys/values on the two finest levels (large inputs).
    """

    w_umr: float = ADU_W_UMR
    w_umf: float = ADU_W_UMF
    w_focal: float = ADU_W_FOCAL
    focal_alpha: float = FOCAL_ALPHA
    focal_gamma: float = FOCAL_GAMMA
    kv_stride: int = 1


def feature_channels(model: nn.Module) -> list[int]:
    """Channels of an ADU network's 8 distilled levels (4 encoder, then 4 decoder)."""
    return model.encoder.channels + [o["channels"] for o in model.decoder.out_info]


@register_recipe("adu_depth", AduDepthCfg)
class AduDepth(Recipe):
    DEFAULT_STUDENT = "adu_student"
    DEFAULT_TEACHER = "stereo_concat_teacher"
    TEACHER_OUTPUTS = frozenset({"depth", "features"})
    NEEDS = frozenset({"depth_gt", "right"})

    def __init__(self, cfg, model_cfg_=None, teacher_cfg=None) -> None:
        super().__init__(cfg, model_cfg_, teacher_cfg)
        s_ch, t_ch = feature_channels(self.student), feature_channels(self.teacher)
        if len(s_ch) != len(t_ch):
            raise ValueError(f"student and teacher distil {len(s_ch)} vs {len(t_ch)} levels")
        strides = [cfg.kv_stride if i % 4 < 2 else 1 for i in range(len(s_ch))]
        self.extras["adapters"] = nn.ModuleList(AttentionAdapter(s, t, k)
                                                for s, t, k in zip(s_ch, t_ch, strides))
        self.extras["restore"] = nn.ModuleList(RestoreBlock(t) for t in t_ch)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        teacher = self.teacher_output(batch)
        out = self.predict(batch)
        losses = supervised_loss(self.cfg, out["depth"], batch,
                                 self.student.cfg.max_depth)
        s = out["log_var"]
        restored = [g(a(f)) for f, a, g in zip(out["features"], self.extras["adapters"],
                                              self.extras["restore"])]
        l_umf = umf_loss(teacher["features"], restored, s)
        l_umr = umr_loss(teacher["depth"], out["depth"], s)
        l_focal = focal_depth_loss(teacher["depth"], out["depth"], alpha=self.cfg.focal_alpha,
                                   gamma=self.cfg.focal_gamma)
        total = (losses["loss"] + self.cfg.w_umr * l_umr + self.cfg.w_umf * l_umf
                 + self.cfg.w_focal * l_focal)
        losses.update(loss=total, umr=l_umr, umf=l_umf, focal=l_focal)
        return losses
