"""What the batch's ``semantics`` labels mean: Cityscapes trainIds and X-Distill's 4 groups.

``semantics`` holds Cityscapes trainIds (19 classes, ``IGNORE_INDEX`` = void). X-Distill
regroups them into 4 depth-compatible groups (paper §4.1, METHODS §5); the table is data, so
it lives here for the segmentation teacher and the X-Distill loss alike.
"""

from __future__ import annotations

import numpy as np
import torch

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # index = Cityscapes trainId
IGNORE_INDEX = 255

# X-Distill Table 1 / §4.1: group -> Cityscapes trainIds
XDISTILL_GROUPS: dict[str, tuple[int, ...]] = {
    "thin objects": (5, 6, 7),
    "people and vehicles": (11, 12, 13, 14, 15, 16, 17, 18),
    "background objects": (2, 3, 4, 8, 9, 10),
    "ground": (0, 1),
}


def _group_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.int64)
    for group, ids in enumerate(XDISTILL_GROUPS.values()):
        lut[list(ids)] = group
    return lut


GROUP_OF_TRAINID = _group_lut()  # (256,) trainId -> group index, 255 for void/unknown


def regroup_labels(labels: torch.Tensor) -> torch.Tensor:
    """Cityscapes trainIds (any int shape) -> X-Distill group ids 0..3, 255 where void."""
    lut = torch.as_tensor(GROUP_OF_TRAINID, device=labels.device)
    return lut[labels.long().clamp(0, 255)]
