"""Shared augmentations: callables on item dicts (the batch schema of ``schema.py``).

Every geometric transform moves all per-pixel keys together and keeps ``K`` and ``baseline``
right: images (``left``, ``right``, ``prev``, ``next``) are resampled with area/bilinear
filtering, depth maps (``depth_gt``, ``teacher_depth``) without mixing depths (sparse-aware:
closest point wins), ``semantics`` by nearest neighbour.

Intrinsics and resampling (and their pixel convention) live in :mod:`camera`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF

from depth_kd_core.data.camera import (
    crop_intrinsics,
    flip_intrinsics,
    resize_depth,
    resize_image,
    resize_nearest,
    scale_intrinsics,
    warp_depth_to_right,
)
from depth_kd_core.data.schema import DEPTH_KEYS, IMAGE_KEYS
from depth_kd_core.errors import DataError

Item = dict
# Keys that describe the left view only; SDFA's stereo swap cannot carry them to the right view.
LEFT_ONLY_KEYS = ("prev", "next", "semantics")

# ------------------------------------------------------------------ tensor helpers


def _image_np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.permute(1, 2, 0).numpy())


def _image_t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def item_size(item: Item) -> tuple[int, int]:
    """(height, width) of the item's ``left`` image."""
    return int(item["left"].shape[-2]), int(item["left"].shape[-1])


def resize_item(item: Item, height: int, width: int) -> Item:
    """Resize every per-pixel key to height x width and scale ``K`` to match."""
    H, W = item_size(item)
    if (H, W) == (height, width):
        return item
    out = dict(item)
    for key in IMAGE_KEYS:
        if key in item:
            out[key] = _image_t(resize_image(_image_np(item[key]), height, width))
    for key in DEPTH_KEYS:
        if key in item:
            out[key] = torch.from_numpy(resize_depth(item[key][0].numpy(), height, width))[None]
    if "semantics" in item:
        out["semantics"] = torch.from_numpy(resize_nearest(item["semantics"][0].numpy(),
                                                           height, width))[None]
    out["K"] = scale_intrinsics(item["K"], width / W, height / H)
    return out


def crop_item(item: Item, y0: int, x0: int, height: int, width: int) -> Item:
    """Crop every per-pixel key to the window at (y0, x0) and shift the principal point."""
    H, W = item_size(item)
    if y0 < 0 or x0 < 0 or y0 + height > H or x0 + width > W:
        raise DataError(f"crop {height}x{width} at (y={y0}, x={x0}) does not fit in the "
                        f"{H}x{W} item; resize first or choose a smaller crop")
    out = dict(item)
    for key in (*IMAGE_KEYS, *DEPTH_KEYS, "semantics"):
        if key in item:
            out[key] = item[key][..., y0:y0 + height, x0:x0 + width].contiguous()
    out["K"] = crop_intrinsics(item["K"], x0, y0)
    return out


def _rand(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * _rand(generator)


# ------------------------------------------------------------------ transforms


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Item], Item]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, item: Item) -> Item:
        for t in self.transforms:
            item = t(item)
        return item


class Resize:
    """Resize to height x width (all per-pixel keys; K scaled)."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)

    def __call__(self, item: Item) -> Item:
        return resize_item(item, self.height, self.width)


class Crop:
    """Crop to height x width, centred or at a random position (K's principal point shifts)."""

    def __init__(self, height: int, width: int, mode: str = "random",
                 generator: torch.Generator | None = None) -> None:
        if mode not in ("random", "center"):
            raise ValueError(f"Crop mode must be 'random' or 'center', got {mode!r}")
        self.height, self.width = int(height), int(width)
        self.mode, self.generator = mode, generator

    def __call__(self, item: Item) -> Item:
        H, W = item_size(item)
        if self.mode == "center":
            y0, x0 = (H - self.height) // 2, (W - self.width) // 2
        else:
            y0 = int(torch.randint(0, max(H - self.height, 0) + 1, (), generator=self.generator))
            x0 = int(torch.randint(0, max(W - self.width, 0) + 1, (), generator=self.generator))
        return crop_item(item, y0, x0, self.height, self.width)


class RandomScaleCrop:
    """Zoom in by s ~ U(scale_range) (s >= 1), then crop back to height x width at random."""

    def __init__(self, height: int, width: int, scale_range: tuple[float, float],
                 generator: torch.Generator | None = None) -> None:
        lo, hi = scale_range
        if not 1.0 <= lo <= hi:
            raise ValueError(f"scale_range {tuple(scale_range)} must satisfy 1 <= lo <= hi: "
                             f"zooming out would need padding the images")
        self.height, self.width, self.range = int(height), int(width), (float(lo), float(hi))
        self.generator = generator

    def __call__(self, item: Item) -> Item:
        s = _uniform(*self.range, self.generator)
        H, W = item_size(item)
        item = resize_item(item, max(int(round(H * s)), self.height),
                           max(int(round(W * s)), self.width))
        return Crop(self.height, self.width, "random", self.generator)(item)


class HorizontalFlip:
    """Mirror the item with probability ``prob``.

    Without ``right``: every key is mirrored and K's cx becomes ``W - 1 - cx``.

    With ``right`` and ``stereo="swap"`` (SDFA-Net's flip mode): the two images are mirrored
    *and swapped*, so the network still sees a left view whose partner is ``baseline`` metres
    to its right. ``depth_gt``/``teacher_depth`` belonged to the old left view; they are
    re-projected into the new left view (old right camera) by moving each point by its
    disparity, then mirrored; pixels the old left could not see become 0. ``prev``, ``next``
    and ``semantics`` cannot be moved to the other camera, so an item holding them is
    refused. With ``stereo="mirror"`` (Monodepth2) nothing is swapped and ``baseline`` is
    negated: the partner now sits on the left, which a recipe must handle.
    """

    def __init__(self, prob: float = 0.5, stereo: str = "swap",
                 generator: torch.Generator | None = None) -> None:
        if stereo not in ("swap", "mirror"):
            raise ValueError(f"HorizontalFlip stereo mode must be 'swap' or 'mirror', got "
                             f"{stereo!r}")
        self.prob, self.stereo, self.generator = float(prob), stereo, generator

    def __call__(self, item: Item) -> Item:
        if self.prob <= 0 or _rand(self.generator) >= self.prob:
            return item
        H, W = item_size(item)
        out = dict(item)
        swap = "right" in item and self.stereo == "swap"
        if swap:
            held = [k for k in LEFT_ONLY_KEYS if k in item]
            if held:
                raise DataError(f"HorizontalFlip(stereo='swap') cannot keep {held} consistent "
                                f"(they describe the left camera only); use stereo='mirror' "
                                f"or disable flipping")
            out["left"], out["right"] = item["right"], item["left"]
            fx, baseline = float(item["K"][0, 0]), float(item["baseline"])
            for key in DEPTH_KEYS:
                if key in item:
                    out[key] = torch.from_numpy(
                        warp_depth_to_right(item[key][0].numpy(), fx, baseline))[None]
        elif "right" in item:
            out["baseline"] = -item["baseline"]
        for key in (*IMAGE_KEYS, *DEPTH_KEYS, "semantics"):
            if key in out:
                out[key] = out[key].flip(-1).contiguous()
        out["K"] = flip_intrinsics(item["K"], W)
        return out


class ColorJitter:
    """Photometric jitter with one draw per item, applied alike to every image key.

    Brightness, contrast and saturation factors come from [1 - x, 1 + x], hue shift from
    [-hue, hue], gamma from [1 - gamma, 1 + gamma] (img ** g); geometry is untouched.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, gamma: float = 0.0, prob: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.hue, self.gamma, self.prob, self.generator = hue, gamma, float(prob), generator

    def draw(self) -> dict[str, float]:
        """One set of factors (identity values for disabled components)."""
        g = self.generator
        return {"brightness": _uniform(1 - self.brightness, 1 + self.brightness, g),
                "contrast": _uniform(1 - self.contrast, 1 + self.contrast, g),
                "saturation": _uniform(1 - self.saturation, 1 + self.saturation, g),
                "hue": _uniform(-self.hue, self.hue, g),
                "gamma": _uniform(1 - self.gamma, 1 + self.gamma, g)}

    @staticmethod
    def apply(img: torch.Tensor, f: dict[str, float]) -> torch.Tensor:
        """Apply factors ``f`` to one 3 x H x W image in [0, 1]."""
        if f["brightness"] != 1:
            img = TF.adjust_brightness(img, f["brightness"])
        if f["contrast"] != 1:
            img = TF.adjust_contrast(img, f["contrast"])
        if f["saturation"] != 1:
            img = TF.adjust_saturation(img, f["saturation"])
        if f["hue"] != 0:
            img = TF.adjust_hue(img, f["hue"])
        if f["gamma"] != 1:
            img = img.clamp(0, 1).pow(f["gamma"])
        return img.clamp(0, 1)

    def __call__(self, item: Item) -> Item:
        if self.prob <= 0 or _rand(self.generator) >= self.prob:
            return item
        factors = self.draw()
        out = dict(item)
        for key in IMAGE_KEYS:
            if key in item:
                out[key] = self.apply(item[key], factors)
        return out
