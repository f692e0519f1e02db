"""Monocular video self-supervision (Monodepth2 "M", METHODS §6).

X-Distill's base and its no-KD twin ``selfsup_mono``. Depth is relative-scale (evaluated
with median scaling).
"""

from __future__ import annotations

from dataclasses import dataclass

from depth_kd_core.models.registry import create_model
from depth_kd_core.recipes.base import Recipe, RecipeCfg
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.selfsup import video_warp_loss


@dataclass
class SelfsupMonoCfg(RecipeCfg):
    """Attributes: pose_encoder: encoder of the separate pose network (Monodepth2: resnet18)."""

    pose_encoder: str = "resnet18"
    pose_pretrained: bool = False


@register_recipe("selfsup_mono", SelfsupMonoCfg)
class SelfsupMono(Recipe):
    DEFAULT_STUDENT = "monodepth_student"
    NEEDS = frozenset({"prev", "next"})

    def __init__(self, cfg, model_cfg_=None, teacher_cfg=None) -> None:
        super().__init__(cfg, model_cfg_, teacher_cfg)
        self.extras["pose_net"] = create_model("pose_net", encoder=cfg.pose_encoder,
                                               pretrained=cfg.pose_pretrained)

    def video_loss(self, out: dict, batch: dict) -> dict:
        """Photometric loss against the previous and next frames, poses from the pose net."""
        sources = [batch["prev"], batch["next"]]
        poses = [self.extras["pose_net"](batch["left"], src)["T"] for src in sources]
        return video_warp_loss(out, poses, sources, batch, self.student.cfg)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        return self.video_loss(self.predict(batch), batch)
