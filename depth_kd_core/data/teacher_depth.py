"""Precomputed teacher depth on disk: the ``teacher_depth`` batch key.

TIE-KD's teacher is any depth model whose depth is computed once and stored (METHODS §2); it
may also run on the stereo pair at a higher resolution than the student's, which makes a
classical matcher clearly stronger (twice the disparity per metre). ``python -m
depth_kd_core.precompute_teacher`` writes one 16-bit PNG per training item (KITTI's encoding:
metres x 256, 0 = no depth) into a folder with a ``teacher_depth.json`` manifest;
``data.teacher_depth_dir`` points training at it and :class:`TeacherDepthFiles` adds the maps
to the items, matched by the item's position in the training set.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch.utils.data import Dataset

from depth_kd_core.data.depth_png import read_depth_png
from depth_kd_core.data.schema import map_to_tensor
from depth_kd_core.errors import DataError

MANIFEST = "teacher_depth.json"


def depth_file(folder: str | Path, index: int) -> Path:
    """Path of training item ``index``'s teacher depth map in ``folder``."""
    return Path(folder) / f"{index:06d}.png"


def read_manifest(folder: str | Path) -> dict | None:
    """Return the folder's manifest (what wrote it, for which size and items), or None."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable teacher-depth manifest ({exc})") from exc


class TeacherDepthFiles(Dataset):
    """Adds ``teacher_depth`` (1 x H x W metres, 0 = none) to each item of ``base``.

    Args:
        base: the training items, before augmentation (the maps go through the same crops
            and flips as the images afterwards).
        folder: written by ``precompute_teacher`` for these items at their loaded size.
        size: (height, width) the items are loaded at; the maps must have it.

    Raises:
        DataError: the folder has no complete manifest, or was written for another size or
            another number of items (each named).
    """

    def __init__(self, base: Dataset, folder: str | Path, size: tuple[int, int]) -> None:
        self.base, self.folder = base, Path(folder)
        key = "data.teacher_depth_dir"
        if not self.folder.is_dir():
            raise DataError(f"{key} {self.folder} is not a folder; write it with python -m "
                            f"depth_kd_core.precompute_teacher")
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise DataError(f"{key} {self.folder} has no {MANIFEST}: the precomputation did not "
                            f"finish (run python -m depth_kd_core.precompute_teacher again to "
                            f"complete it)")
        if tuple(manifest.get("size", ())) != tuple(size):
            raise DataError(f"{key} {self.folder} holds {manifest.get('size')} maps, but the "
                            f"training items are loaded at {list(size)} (data.height/width or "
                            f"data.resize_height/width)")
        if manifest.get("items") != len(base):
            raise DataError(f"{key} {self.folder} holds {manifest.get('items')} maps, but the "
                            f"training set has {len(base)} items; precompute it for this data "
                            f"section")

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        depth = read_depth_png(depth_file(self.folder, i))
        if depth.shape != tuple(item["left"].shape[-2:]):
            raise DataError(f"{depth_file(self.folder, i)} is {depth.shape[1]}x{depth.shape[0]}, "
                            f"but item {i}'s image is {item['left'].shape[-1]}x"
                            f"{item['left'].shape[-2]}")
        item["teacher_depth"] = map_to_tensor(depth)  # float32 metres already
        return item
