"""Teacher recipes without a depth loss of their own.

``sgbm`` (nothing to train) and ``segmentation`` (X-Distill's teacher trained on semantic
labels).
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from depth_kd_core.data.semantics import IGNORE_INDEX
from depth_kd_core.errors import DepthKDError
from depth_kd_core.recipes.base import Recipe, RecipeCfg
from depth_kd_core.recipes.registry import register_recipe


@register_recipe("sgbm", RecipeCfg)
class Sgbm(Recipe):
    """The classical stereo teacher: no training.

    The trainer validates it and writes a checkpoint (config only) that KD recipes can name as
    their teacher.
    """

    DEFAULT_STUDENT = "sgbm_teacher"
    NEEDS = frozenset({"right", "baseline"})
    TRAINABLE = False

    def predict(self, batch: dict) -> dict:
        return self.student(batch["left"], batch["right"], K=batch["K"],
                            baseline=batch["baseline"])

    def training_step(self, batch: dict, step: int) -> dict:
        raise RuntimeError("the sgbm recipe has nothing to train")

    def validation_metrics(self, batch: dict, out: dict):
        """Return depth metrics where SGBM found a match (its holes are reported as coverage).

        On data without ground truth, the coverage alone.
        """
        from depth_kd_core.recipes.validation import depth_validation

        coverage = float(out["valid"].mean())
        if "depth_gt" not in batch:
            return {"coverage": coverage}
        metrics = depth_validation(self, batch, {"depth": out["depth"]}, only_valid=True)
        if metrics is not None:
            metrics["coverage"] = coverage
        return metrics

    def check_validation(self, metrics: dict | None) -> None:
        """Raise if the classical teacher matched nothing: an error, not an empty run."""
        name = self.student.cfg.name
        if metrics is None:
            raise DepthKDError(f"teacher '{name}' found no valid depth on any validation pixel "
                               f"that has ground truth: check the stereo topics (left/right "
                               f"swapped?), the baseline and model.num_disparities")
        if metrics.get("coverage", 1.0) == 0.0:
            raise DepthKDError(f"teacher '{name}' found no valid depth on any validation frame: "
                               f"check the stereo topics (left/right swapped?), the baseline "
                               f"and model.num_disparities")


@register_recipe("segmentation", RecipeCfg)
class Segmentation(Recipe):
    """Cross-entropy on Cityscapes trainIds (255 ignored); best checkpoint by mean IoU."""

    DEFAULT_STUDENT = "segmentation_teacher"
    NEEDS = frozenset({"semantics"})
    BEST_METRIC = ("miou", True)

    def training_step(self, batch: dict, step: int) -> dict:
        self.check_batch(batch)
        logits = self.predict(batch)["semantics"]
        loss = F.cross_entropy(logits, batch["semantics"][:, 0], ignore_index=IGNORE_INDEX)
        return {"loss": loss}

    def validation_metrics(self, batch: dict, out: dict) -> dict[str, float]:
        pred = out["semantics"].argmax(1).cpu().numpy()
        gt = batch["semantics"][:, 0].cpu().numpy()
        valid = gt != IGNORE_INDEX
        ious = []
        for c in range(out["semantics"].shape[1]):
            p, g = (pred == c) & valid, (gt == c) & valid
            union = (p | g).sum()
            if union:
                ious.append((p & g).sum() / union)
        return {"pixel_acc": float((pred == gt)[valid].mean()), "miou": float(np.mean(ious))}
