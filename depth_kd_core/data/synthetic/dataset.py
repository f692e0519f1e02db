"""``SyntheticStereoDataset``: the synthetic world as a torch Dataset in the batch schema."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from depth_kd_core.data.schema import image_to_tensor, map_to_tensor
from depth_kd_core.data.synthetic.world import SyntheticWorld


class SyntheticStereoDataset(Dataset):
    """Scenes ``first_scene .. first_scene + length - 1`` of ``SyntheticWorld(seed)``.

    Args:
        seed: world seed (use different seeds for training and held-out test scenes).
        length: number of items (one scene each).
        height, width: image size, pixels.
        gt: "dense" (rendered depth) or "lidar" (sparse scan lines, KITTI-like) for
            ``depth_gt``; "none" leaves it out.
        sequence: add ``prev``/``next`` frames of a forward-driving camera.
        semantics: add ``semantics`` (Cityscapes trainIds).
        first_scene: index of the first scene.
        transform: optional callable applied to each item dict (augmentations).
        world_options: extra keyword arguments of :class:`SyntheticWorld`.
    """

    def __init__(self, seed: int = 0, length: int = 100, height: int = 96, width: int = 320, *,
                 gt: str = "dense", sequence: bool = False, semantics: bool = True,
                 first_scene: int = 0, transform: Callable[[dict], dict] | None = None,
                 **world_options) -> None:
        if gt not in ("dense", "lidar", "none"):
            raise ValueError(f"gt must be 'dense', 'lidar' or 'none', got {gt!r}")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.world = SyntheticWorld(seed, height, width, **world_options)
        self.length = int(length)
        self.gt = gt
        self.sequence = sequence
        self.semantics = semantics
        self.first_scene = int(first_scene)
        self.transform = transform

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        scene = self.first_scene + index
        if self.sequence:  # prev, target, next; only the target needs its right view
            prev = self.world.frame(scene, 0, stereo=False)
            frame = self.world.frame(scene, 1)
            nxt = self.world.frame(scene, 2, stereo=False)
        else:
            frame = self.world.sample(scene)
        item = {
            "left": image_to_tensor(frame["left"]),
            "right": image_to_tensor(frame["right"]),
            "K": torch.from_numpy(frame["K"]).float(),
            "baseline": torch.tensor(frame["baseline"], dtype=torch.float32),
            "stamp_ns": torch.tensor(scene * 100_000_000, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if self.gt != "none":
            key = "depth" if self.gt == "dense" else "lidar_depth"
            item["depth_gt"] = map_to_tensor(frame[key])
        if self.semantics:
            item["semantics"] = map_to_tensor(frame["semantics"].astype(np.int64), torch.int64)
        if self.sequence:
            item["prev"] = image_to_tensor(prev["left"])
            item["next"] = image_to_tensor(nxt["left"])
        return self.transform(item) if self.transform else item
