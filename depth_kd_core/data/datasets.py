"""``build_datasets``: the training and validation datasets of a ``DataCfg``.

One entry point for every source (synthetic world, KITTI raw, recorded bags). A recipe says
which batch keys it needs (``{"right"}``, ``{"prev", "next"}``, ``{"depth_gt"}``,
``{"semantics"}`` …); the builder provides them or raises a DataError naming the missing keys
and the source, before anything heavy is loaded. Training items are augmented
(``cfg.augment``); validation items never are, and carry ``depth_gt`` whenever the source has
ground truth so validation metrics can run. Both collate with
``torch.utils.data.default_collate``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from depth_kd_core.data.config import DataCfg
from depth_kd_core.data.schema import BATCH_KEYS, IMAGE_KEYS
from depth_kd_core.data.synthetic.dataset import SyntheticStereoDataset
from depth_kd_core.data.teacher_depth import TeacherDepthFiles
from depth_kd_core.data.transforms import (
    LEFT_ONLY_KEYS,
    ColorJitter,
    Compose,
    Crop,
    HorizontalFlip,
    RandomScaleCrop,
)
from depth_kd_core.errors import DataError, DepthKDError

LOG = logging.getLogger(__name__)
ALWAYS = {"left", "K", "stamp_ns", "index"}
# Item key added by SkipBadItems (data.skip_bad_frames): int64, how many bad items were passed
# over to produce this one. Not a batch-schema key: the trainer removes and counts it.
SKIPPED_KEY = "bad_items_skipped"
MAX_CONSECUTIVE_BAD = 64  # more bad items in a row than this is a broken source, not a glitch


class SkipBadItems(Dataset):
    """Replace an item that raises a :class:`DepthKDError` by the next good one.

    A bad item is an undecodable frame or a damaged chunk; each is warned about once per item
    and process.

    Every item carries :data:`SKIPPED_KEY`, so batches collate and the trainer can report the
    count. Deterministic: item i always becomes the same good item.
    """

    def __init__(self, base: Dataset, name: str) -> None:
        self.base, self.name = base, name
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        n = len(self.base)
        for k in range(min(n, MAX_CONSECUTIVE_BAD)):
            j = (i + k) % n
            try:
                item = dict(self.base[j])
            except DepthKDError as exc:
                if j not in self._warned:
                    self._warned.add(j)
                    LOG.warning("skipped bad %s item %d: %s", self.name, j, exc)
                continue
            item[SKIPPED_KEY] = torch.tensor(k, dtype=torch.int64)
            return item
        raise DataError(f"{self.name} items {i}..{i + min(n, MAX_CONSECUTIVE_BAD) - 1} are all "
                        f"unreadable (data.skip_bad_frames=true); the source is broken, see the "
                        f"warnings above")


class ItemView(Dataset):
    """Items ``indices`` of ``base``, renumbered from 0, with an optional transform."""

    def __init__(self, base: Dataset, indices: Sequence[int],
                 transform: Callable[[dict], dict] | None = None) -> None:
        self.base, self.indices, self.transform = base, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[self.indices[i]])
        item["index"] = torch.tensor(i, dtype=torch.int64)
        return self.transform(item) if self.transform else item


class CachedDataset(Dataset):
    """Keeps the items of a deterministic dataset in memory after their first use.

    Images that came from uint8 are stored as uint8 and semantics as uint8 (4-8x smaller);
    unpacking restores the exact same values. The cache lives in the process that reads, so
    with DataLoader workers use ``persistent_workers=True`` to keep it across epochs.
    Transforms applied after the cache must not modify tensors in place.
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        if i not in self._cache:
            self._cache[i] = _pack(self.base[i])
        return _unpack(self._cache[i])


def _pack(item: dict) -> dict:
    out = dict(item)
    for key in IMAGE_KEYS:
        if key in item:
            out[key] = (item[key] * 255).round().to(torch.uint8)
    if "semantics" in item:
        out["semantics"] = item["semantics"].to(torch.uint8)
    return out


def _unpack(item: dict) -> dict:
    out = dict(item)
    for key in IMAGE_KEYS:
        if key in item:
            out[key] = item[key].float().div_(255.0)
    if "semantics" in item:
        out["semantics"] = item["semantics"].to(torch.int64)
    return out


def available_keys(cfg: DataCfg) -> set[str]:
    """Batch keys the configured source can provide (``teacher_depth``: when precomputed)."""
    precomputed = {"teacher_depth"} if cfg.teacher_depth_dir else set()
    return _source_keys(cfg) | precomputed


def _source_keys(cfg: DataCfg) -> set[str]:
    if cfg.source == "synthetic":
        return set(BATCH_KEYS) - {"teacher_depth"}
    if cfg.source == "kitti":
        keys = ALWAYS | {"depth_gt", "prev", "next"}
        return keys | ({"right", "baseline"} if cfg.kitti.stereo else set())
    if cfg.source == "rosbag":
        keys = ALWAYS | {"prev", "next"}
        keys |= {"right", "baseline"} if cfg.rosbag.right_topic else set()
        return keys | ({"depth_gt"} if cfg.rosbag.depth_topic else set())
    raise DataError(f"data.source must be 'synthetic', 'kitti' or 'rosbag', got {cfg.source!r}")


def _hint(cfg: DataCfg, missing: list[str]) -> str:
    hints = {"right": {"kitti": "set data.kitti.stereo=true",
                       "rosbag": "set data.rosbag.right_topic (and right_info_topic)"},
             "baseline": {"kitti": "set data.kitti.stereo=true",
                          "rosbag": "set data.rosbag.right_topic"},
             "depth_gt": {"rosbag": "set data.rosbag.depth_topic (16UC1/32FC1)"},
             "semantics": {"kitti": "use data.source=synthetic",
                           "rosbag": "use data.source=synthetic"},
             "teacher_depth": {src: "set data.teacher_depth_dir (python -m "
                               "depth_kd_core.precompute_teacher writes it)"
                               for src in ("synthetic", "kitti", "rosbag")}}
    found = [hints.get(k, {}).get(cfg.source) for k in missing]
    return "; ".join(h for h in dict.fromkeys(found) if h) or "choose a source that has them"


def check_needs(cfg: DataCfg, needs: set[str]) -> None:
    """Raise DataError if ``needs`` holds unknown keys or keys the source cannot provide."""
    unknown = sorted(set(needs) - set(BATCH_KEYS))
    if unknown:
        raise DataError(f"unknown batch keys {unknown}; the batch schema has {list(BATCH_KEYS)}")
    missing = sorted(set(needs) - available_keys(cfg))
    if missing:
        raise DataError(f"the recipe needs batch keys {missing}, which data source "
                        f"'{cfg.source}' does not provide as configured ({_hint(cfg, missing)})")


def train_transform(cfg: DataCfg, keys: set[str]) -> Callable[[dict], dict] | None:
    """Augmentations of training items with ``keys``, or None when disabled."""
    aug = cfg.augment
    crop = [Crop(cfg.height, cfg.width, "random")] if _crops(cfg) else []
    if not aug.enabled:
        return Compose(crop) if crop else None
    steps: list[Callable[[dict], dict]] = list(crop)
    if tuple(aug.scale_range) != (1.0, 1.0):
        steps.append(RandomScaleCrop(cfg.height, cfg.width, tuple(aug.scale_range)))
    if aug.flip_prob > 0:
        if "right" in keys and keys & set(LEFT_ONLY_KEYS):
            LOG.warning("horizontal flip disabled: stereo items with %s cannot be flipped with "
                        "a left/right swap", sorted(keys & set(LEFT_ONLY_KEYS)))
        else:
            steps.append(HorizontalFlip(aug.flip_prob, stereo="swap"))
    if aug.color_prob > 0:
        steps.append(ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue,
                                 aug.gamma, prob=aug.color_prob))
    return Compose(steps) if steps else None


def build_datasets(cfg: DataCfg, needs: set[str]) -> tuple[Dataset, Dataset]:
    """(train, validation) datasets of ``cfg.source`` at ``cfg.height x cfg.width``.

    Args:
        cfg: the ``data`` config section.
        needs: batch keys the recipe needs beyond ``left``/``K``.

    Raises:
        DataError: a needed key is not provided by the source (named, with a hint), or the
            source's files are missing or malformed.
    """
    needs = set(needs)
    check_needs(cfg, needs)
    train, val = _build(cfg, needs - {"teacher_depth"})
    if "teacher_depth" in needs:  # training only: validation scores the student alone
        train = TeacherDepthFiles(train, cfg.teacher_depth_dir, load_size(cfg))
    if cfg.skip_bad_frames:
        train, val = SkipBadItems(train, "training"), SkipBadItems(val, "validation")
    sample = train[0]
    missing = sorted(needs - set(sample) - {SKIPPED_KEY})
    if missing:  # a guard on the builders themselves
        raise DataError(f"data source '{cfg.source}' built items without {missing}")
    val_crop = Crop(cfg.height, cfg.width, "center") if _crops(cfg) else None
    return ItemView(train, range(len(train)), train_transform(cfg, set(sample))), \
        ItemView(val, range(len(val)), val_crop)


def training_items(cfg: DataCfg, needs: set[str]) -> Dataset:
    """Return the training items at :func:`load_size`, before augmentation, in order.

    What precomputed teacher depth is computed on and matched to (item i -> file i).
    """
    check_needs(cfg, set(needs))
    return _build(cfg, set(needs))[0]


def _build(cfg: DataCfg, needs: set[str]) -> tuple[Dataset, Dataset]:
    builder = {"synthetic": _synthetic, "kitti": _kitti, "rosbag": _rosbag}[cfg.source]
    return builder(cfg, needs)


def _crops(cfg: DataCfg) -> bool:
    """Items are loaded at the resize size and cropped to height x width."""
    if bool(cfg.resize_height) != bool(cfg.resize_width):
        raise DataError("set both data.resize_height and data.resize_width, or neither")
    if cfg.resize_height and (cfg.resize_height < cfg.height or cfg.resize_width < cfg.width):
        raise DataError(f"data.resize {cfg.resize_height}x{cfg.resize_width} is smaller than "
                        f"the crop data.height x data.width = {cfg.height}x{cfg.width}")
    return bool(cfg.resize_height)


def load_size(cfg: DataCfg) -> tuple[int, int]:
    """(height, width) items are loaded at, before any crop (0 = native)."""
    return (cfg.resize_height, cfg.resize_width) if _crops(cfg) else (cfg.height, cfg.width)


_SYNTHETIC_CACHES: dict[tuple, CachedDataset] = {}  # one rendering per process and setting


def _synthetic(cfg: DataCfg, needs: set[str]) -> tuple[Dataset, Dataset]:
    src = cfg.synthetic

    def make(seed: int, n: int, gt: str) -> Dataset:
        args = (seed, n, *load_size(cfg), gt, bool(needs & {"prev", "next"}),
                "semantics" in needs, src.noise_std, src.baseline)
        if src.cache and args in _SYNTHETIC_CACHES:  # e.g. several trainings in one process
            return _SYNTHETIC_CACHES[args]
        ds = SyntheticStereoDataset(*args[:4], gt=gt, sequence=args[5], semantics=args[6],
                                    noise_std=src.noise_std, baseline=src.baseline)
        if not src.cache:
            return ds
        return _SYNTHETIC_CACHES.setdefault(args, CachedDataset(ds))

    train_gt = src.gt if "depth_gt" in needs else "none"
    return make(src.seed, src.scenes, train_gt), make(src.val_seed, src.val_scenes, src.gt)


def _kitti(cfg: DataCfg, needs: set[str]) -> tuple[Dataset, Dataset]:
    from depth_kd_core.data.kitti import KittiRawDataset

    k = cfg.kitti
    if not k.root or not k.train_split or not k.val_split:
        raise DataError("data.source=kitti needs data.kitti.root, data.kitti.train_split and "
                        "data.kitti.val_split")

    def make(split: str, gt: str, stereo: bool) -> Dataset:
        height, width = load_size(cfg)
        return KittiRawDataset(k.root, split, height=height or None,
                               width=width or None, stereo=stereo,
                               gt=gt, annotated_root=k.annotated_root,
                               sequence=bool(needs & {"prev", "next"}))

    stereo = bool(needs & {"right", "baseline"})
    return (make(k.train_split, k.gt if "depth_gt" in needs else "none", stereo),
            make(k.val_split, k.gt, stereo))


def _rosbag(cfg: DataCfg, needs: set[str]) -> tuple[Dataset, Dataset]:
    from depth_kd_core.data.bags.datasets import MonoBagDataset, StereoBagDataset

    r = cfg.rosbag
    if not r.path:
        raise DataError("data.source=rosbag needs data.rosbag.path (a bag file or folder)")

    def make(path: str) -> Dataset:
        # depth_gt whenever a depth topic is set: frames without depth are dropped, so train
        # and validation must be cut from the same rows
        height, width = load_size(cfg)
        common = dict(height=height or None, width=width or None,
                      sequence=bool(needs & {"prev", "next"}),
                      max_gap_ms=r.max_gap_ms or None, rectify=r.rectify,
                      cache_dir=r.cache_dir or None, sync_tolerance_ms=r.sync_tolerance_ms,
                      depth_topic=r.depth_topic)
        if needs & {"right", "baseline"}:
            return StereoBagDataset(path, r.left_topic, r.right_topic, r.left_info_topic,
                                    r.right_info_topic, **common)
        return MonoBagDataset(path, r.left_topic, r.left_info_topic or None, **common)

    full = make(r.path)
    _report(full)
    if r.val_path:
        val = make(r.val_path)
        _report(val)
        return full, val
    n = len(full)
    n_val = max(1, int(round(n * r.val_fraction)))
    if n - n_val < 1:
        raise DataError(f"bag {r.path} has {n} items: too few to hold out a validation part "
                        f"(data.rosbag.val_fraction={r.val_fraction}); set data.rosbag.val_path")
    # Contiguous tail: neighbouring frames are nearly identical, so a random split would leak.
    return ItemView(full, range(n - n_val)), ItemView(full, range(n - n_val, n))


def _report(ds: Dataset) -> None:
    """Say what a bag dataset kept and dropped.

    A warning when frames were dropped (duplicate or unmatched stamps, missing depth or
    neighbours), else an info line.
    """
    summary, reduced = ds.summary()
    (LOG.warning if reduced else LOG.info)("%s", summary)
