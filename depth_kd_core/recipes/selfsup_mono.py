"""Monocular video self-supervision (Monodepth2 "M", METHODS §6).

X-Distill's base and its no-KD twin ``selfsup_mono``. Depth is relative-scale (evaluated
with median scaling).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from depth_kd_core.layers.geometry import invert_rigid
from depth_kd_core.models.registry import create_model
from depth_kd_core.recipes.base import Recipe, RecipeCfg
from depth_kd_core.recipes.registry import register_recipe
from depth_kd_core.recipes.selfsup import video_warp_loss


@dataclass
class SelfsupMonoCfg(RecipeCfg):
    """Monodepth2's video self-supervision settings.

    Attributes: pose_encoder: encoder of the separate pose network (Monodepth2: resnet18);
    pose_init_forward: the untrained pose net's forward step, depth-net units (``PoseNetCfg``).
    """

    pose_encoder: str = "resnet18"
    pose_pretrained: bool = False
    pose_init_forward: float = 0.0


@register_recipe("selfsup_mono", SelfsupMonoCfg)
class SelfsupMono(Recipe):
    DEFAULT_STUDENT = "monodepth_student"
    NEEDS = frozenset({"prev", "next"})

    def __init__(self, cfg, model_cfg_=None, teacher_cfg=None) -> None:
        super().__init__(cfg, model_cfg_, teacher_cfg)
        self.extras["pose_net"] = create_model("pose_net", encoder=cfg.pose_encoder,
                                               pretrained=cfg.pose_pretrained,
                                               init_forward=cfg.pose_init_forward)

    def video_poses(self, batch: dict) -> list[torch.Tensor]:
        """(B, 4, 4) target -> source transforms for ``prev`` and ``next``, Monodepth2's way.

        The pose net always sees a pair in temporal order, (earlier, later), and the previous
        frame's transform is the inverse of prev -> target, so one output means one direction
        of travel for both frames. Asked for (target, prev) and (target, next) it has to tell
        the two apart from the pixels; from scratch it gave both the same pose (issue 18).
        """
        pose_net = self.extras["pose_net"]
        prev_to_target = pose_net(batch["prev"], batch["left"])["T"]
        return [invert_rigid(prev_to_target), pose_net(batch["left"], batch["next"])["T"]]

    def video_loss(self, out: dict, batch: dict) -> dict:
        """Photometric loss against the previous and next frames, poses from the pose net."""
        sources = [batch["prev"], batch["next"]]
        return video_warp_loss(out, self.video_poses(batch), sources, batch, self.student.cfg)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        return self.video_loss(self.predict(batch), batch)
