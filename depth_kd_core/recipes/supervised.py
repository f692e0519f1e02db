"""Supervised training on ground-truth depth.

The no-KD twin ``supervised`` and the teacher recipe ``stereo_supervised`` (a stereo network
trained on LiDAR / rendered depth).

Loss "l1" is DACNN's L_pixel (eq. 3, + edge-aware smoothness eq. 4 for the student); "silog"
is NeWCRFs' L_b used by ADU-Depth's teacher and student baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from depth_kd_core.losses.depth import l1_loss, silog_loss
from depth_kd_core.losses.smoothness import edge_aware_smoothness
from depth_kd_core.recipes.base import Recipe, RecipeCfg
from depth_kd_core.recipes.registry import register_recipe


@dataclass
class SupervisedCfg(RecipeCfg):
    """Supervised recipe settings.

    Attributes: loss; smooth_weight (DACNN alpha = 0.01 on depth, 0 = off);
    silog_min_depth (NeWCRFs trains SILog on gt > 1 m); gt_beyond_range: "ignore" leaves
    ground truth farther than the network's ``max_depth`` out of the loss, "keep" trains on it
    as the papers' code does. A head of ``sigmoid x max_depth`` cannot output such a depth:
    pulled towards it, the saturated pixels cost the rest of the frame. Trained on every
    rendered pixel (5 % beyond 80 m), ADU's student scored Garg AbsRel 0.187 with them and
    0.168 without; its LiDAR twin 0.168 and 0.161 (RESULTS.md, issue 18, thirteenth session).
    """

    loss: Literal["l1", "silog"] = "silog"
    smooth_weight: float = 0.0
    silog_min_depth: float = 1.0
    gt_beyond_range: Literal["ignore", "keep"] = "ignore"


def supervised_loss(cfg: SupervisedCfg, depth: torch.Tensor, batch: dict,
                    max_depth: float) -> dict:
    """Compute the GT term shared by the twins, the teachers and the KD recipes that keep it.

    depth, ``batch["depth_gt"]``: B×1×H×W metres (0 = no ground truth); ``max_depth``: the
    farthest depth the network outputs, metres (see ``SupervisedCfg.gt_beyond_range``).
    """
    gt = batch["depth_gt"]
    in_range = gt <= (max_depth if cfg.gt_beyond_range == "ignore" else math.inf)
    if cfg.loss == "l1":
        gt_loss = l1_loss(depth, gt, (gt > 0) & in_range)
    else:
        gt_loss = silog_loss(depth, gt, (gt > cfg.silog_min_depth) & in_range)
    out = {"loss": gt_loss, "gt_loss": gt_loss}
    if cfg.smooth_weight > 0:
        smooth = edge_aware_smoothness(depth, batch["left"], normalize=False)
        out["smooth"] = smooth
        out["loss"] = gt_loss + cfg.smooth_weight * smooth
    return out


@register_recipe("supervised", SupervisedCfg)
class Supervised(Recipe):
    """A monocular student trained on ground truth only (no teacher)."""

    DEFAULT_STUDENT = "adu_student"
    NEEDS = frozenset({"depth_gt"})

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        return supervised_loss(self.cfg, self.predict(batch)["depth"], batch,
                               self.student.cfg.max_depth)


@dataclass
class StereoSupervisedCfg(SupervisedCfg):
    loss: Literal["l1", "silog"] = "l1"


@register_recipe("stereo_supervised", StereoSupervisedCfg)
class StereoSupervised(Supervised):
    """A stereo teacher (left + right in) trained on ground truth; saved as the teacher."""

    DEFAULT_STUDENT = "stereo_corr_teacher"
    NEEDS = frozenset({"depth_gt", "right"})

    def predict(self, batch: dict) -> dict:
        return self.student(batch["left"], batch["right"], K=batch.get("K"),
                            baseline=batch.get("baseline"))
