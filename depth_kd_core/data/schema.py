"""The batch schema: the one definition of the keys every dataset yields.

KITTI, bag and synthetic datasets all produce per-item dicts with these keys (the per-item
shapes drop the leading B); ``torch.utils.data.default_collate`` stacks them into a batch.
Absent keys are absent, never zero-filled: a recipe that needs ``right`` on a monocular bag
fails with a clear error instead of silently training on zeros.

=================  ===================  =====================================================
key                batch shape          meaning
=================  ===================  =====================================================
``left``           B x 3 x H x W        float32 RGB in [0, 1], the (left) camera image
``right``          B x 3 x H x W        float32 RGB in [0, 1], right image of a stereo pair
``K``              B x 3 x 3            float32 intrinsics at the batch resolution (pixels)
``baseline``       B                    float32 stereo baseline, metres (stereo sources)
``depth_gt``       B x 1 x H x W        float32 ground-truth depth of ``left``, metres, 0 =
                                        invalid (LiDAR or rendered depth)
``semantics``      B x 1 x H x W        int64 Cityscapes trainIds, 255 = void
``prev``/``next``  B x 3 x H x W        float32 RGB of the previous / next video frame
``teacher_depth``  B x 1 x H x W        float32 precomputed teacher depth, metres, 0 = none
``stamp_ns``       B                    int64 capture time, nanoseconds
``index``          B                    int64 position of the item in its dataset
=================  ===================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from depth_kd_core.errors import DataError

BATCH_KEYS = ("left", "right", "K", "baseline", "depth_gt", "semantics", "prev", "next",
              "teacher_depth", "stamp_ns", "index")
IMAGE_KEYS = ("left", "right", "prev", "next")
DEPTH_KEYS = ("depth_gt", "teacher_depth")


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 3 x H x W float32 in [0, 1]."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"expected an H x W x 3 uint8 RGB image, got {img.dtype} {img.shape}")
    # numpy, not torch: torch's threaded float()/div_ is several times slower in DataLoader
    # workers that compete for cores
    out = np.empty((3, *img.shape[:2]), dtype=np.float32)
    np.divide(img.transpose(2, 0, 1), np.float32(255.0), out=out)
    return torch.from_numpy(out)


def map_to_tensor(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """H x W array -> 1 x H x W tensor."""
    if x.ndim != 2:
        raise DataError(f"expected an H x W map, got shape {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)[None]


def require_keys(batch: Mapping, keys: Iterable[str], who: str) -> None:
    """Raise DataError naming ``who`` and the missing batch keys (and what the batch has)."""
    missing = [k for k in keys if k not in batch]
    if missing:
        raise DataError(
            f"{who} needs batch keys {missing}, but the data source provides only "
            f"{sorted(batch)}. Configure a source that has them (e.g. a stereo bag for "
            f"'right', data.sequence=true for 'prev'/'next')."
        )


def check_item(item: Mapping) -> None:
    """Validate one dataset item against the schema (keys, shapes, dtypes); for tests/debug."""
    unknown = set(item) - set(BATCH_KEYS)
    if unknown:
        raise DataError(f"item has keys outside the batch schema: {sorted(unknown)}")
    if "left" not in item or "K" not in item:
        raise DataError("item must have 'left' and 'K'")
    _, H, W = item["left"].shape
    for key in IMAGE_KEYS:
        if key in item and tuple(item[key].shape) != (3, H, W):
            raise DataError(f"item['{key}'] has shape {tuple(item[key].shape)}, "
                            f"expected (3, {H}, {W})")
    for key in (*DEPTH_KEYS, "semantics"):
        if key in item and tuple(item[key].shape) != (1, H, W):
            raise DataError(f"item['{key}'] has shape {tuple(item[key].shape)}, "
                            f"expected (1, {H}, {W})")
    if tuple(item["K"].shape) != (3, 3):
        raise DataError(f"item['K'] has shape {tuple(item['K'].shape)}, expected (3, 3)")
