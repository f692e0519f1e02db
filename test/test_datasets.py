"""build_datasets: every source yields the keys a recipe needs (or names what is missing).

Training items are augmented consistently, validation items never, and batches collate.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from depth_kd_core.config import build_dataclass
from depth_kd_core.data.config import DataCfg
from depth_kd_core.data.datasets import CachedDataset, build_datasets
from depth_kd_core.data.schema import check_item
from depth_kd_core.data.synthetic.dataset import SyntheticStereoDataset
from depth_kd_core.data.synthetic.recording import write_synthetic_bag, write_synthetic_kitti
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.errors import DataError

H, W = 32, 96


def _cfg(**data) -> DataCfg:
    base = {"height": H, "width": W, "synthetic": {"scenes": 3, "val_scenes": 2}}
    base.update(data)
    return build_dataclass(DataCfg, base)


def test_synthetic_items_have_the_needed_keys_and_collate():
    train, val = build_datasets(_cfg(), {"right", "depth_gt", "semantics", "prev", "next"})
    assert (len(train), len(val)) == (3, 2)
    for ds in (train, val):
        item = ds[0]
        check_item(item)
        assert {"right", "depth_gt", "semantics", "prev", "next", "baseline"} <= set(item)
    batch = next(iter(DataLoader(train, batch_size=3)))
    assert batch["left"].shape == (3, 3, H, W) and batch["semantics"].dtype == torch.int64


def test_validation_items_are_never_augmented_and_come_from_the_held_out_seed():
    cfg = _cfg(augment={"flip_prob": 1.0, "color_prob": 1.0, "brightness": 0.5})
    _, val = build_datasets(cfg, {"right"})
    raw = SyntheticStereoDataset(cfg.synthetic.val_seed, 2, H, W, gt=cfg.synthetic.gt)
    for i in range(2):
        item, expected = val[i], raw[i]
        for key in ("left", "right", "K", "depth_gt"):
            torch.testing.assert_close(item[key], expected[key])


def test_training_flip_swaps_the_stereo_pair_and_mirrors_cx():
    cfg = _cfg(augment={"flip_prob": 1.0, "color_prob": 0.0})
    train, _ = build_datasets(cfg, {"right"})
    raw = SyntheticStereoDataset(cfg.synthetic.seed, 3, H, W, gt="none", semantics=False)[1]
    item = train[1]
    torch.testing.assert_close(item["left"], raw["right"].flip(-1))
    torch.testing.assert_close(item["right"], raw["left"].flip(-1))
    assert float(item["K"][0, 2]) == pytest.approx(W - 1 - float(raw["K"][0, 2]))
    assert float(item["baseline"]) == pytest.approx(0.54)


def test_flip_is_disabled_when_stereo_items_carry_video_frames(caplog):
    cfg = _cfg(augment={"flip_prob": 1.0, "color_prob": 0.0})
    with caplog.at_level(logging.WARNING):
        train, _ = build_datasets(cfg, {"right", "prev", "next"})
    assert "horizontal flip disabled" in caplog.text
    raw = SyntheticStereoDataset(cfg.synthetic.seed, 3, H, W, gt="none", semantics=False,
                                 sequence=True)[0]
    torch.testing.assert_close(train[0]["left"], raw["left"])


def test_synthetic_cache_returns_the_same_values_without_rendering_again(monkeypatch):
    base = SyntheticStereoDataset(0, 2, H, W, sequence=True)
    cached = CachedDataset(base)
    first = [cached[i] for i in range(2)]

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(base.world, "frame", no_render)
    monkeypatch.setattr(base.world, "sample", no_render)
    for i in range(2):
        again = cached[i]
        for key, value in first[i].items():
            torch.testing.assert_close(again[key], value, rtol=0, atol=0)
        for key in ("left", "right", "prev", "semantics"):
            assert again[key].dtype == first[i][key].dtype
    fresh = SyntheticStereoDataset(0, 2, H, W, sequence=True)[1]
    for key, value in fresh.items():
        torch.testing.assert_close(first[1][key], value, rtol=0, atol=0)


def test_missing_keys_are_named_with_the_source():
    with pytest.raises(DataError, match=r"needs batch keys \['semantics'\], which data source "
                                        r"'kitti' does not provide .*use data.source=synthetic"):
        build_datasets(_cfg(source="kitti"), {"semantics"})
    with pytest.raises(DataError, match=r"\['right'\], which data source 'rosbag' .*"
                                        r"set data.rosbag.right_topic"):
        build_datasets(_cfg(source="rosbag", rosbag={"right_topic": ""}), {"right"})
    with pytest.raises(DataError, match=r"\['depth_gt'\], which data source 'rosbag' .*"
                                        r"depth_topic"):
        build_datasets(_cfg(source="rosbag"), {"depth_gt"})
    with pytest.raises(DataError, match=r"unknown batch keys \['colour'\]"):
        build_datasets(_cfg(), {"colour"})
    with pytest.raises(DataError, match=r"needs data.kitti.root"):
        build_datasets(_cfg(source="kitti"), {"right"})


def test_kitti_source(tmp_path):
    world = SyntheticWorld(seed=5, height=2 * H, width=2 * W)
    layout = write_synthetic_kitti(tmp_path, world, 5)
    cfg = _cfg(source="kitti", kitti={"root": str(layout.root), "train_split":
                                      str(layout.split_file), "val_split": str(layout.split_file)},
               augment={"enabled": False})
    train, val = build_datasets(cfg, {"right", "prev", "next"})
    assert len(train) == len(val) == 6
    item = train[0]
    check_item(item)
    assert item["left"].shape == (3, H, W) and "depth_gt" not in item
    np.testing.assert_allclose(item["K"].numpy(), SyntheticWorld(0, H, W).K, rtol=1e-5)
    assert "depth_gt" in val[0]  # validation carries ground truth for metrics
    default_collate([val[0], val[5]])


def test_rosbag_source_holds_out_the_tail_of_the_bag(tmp_path):
    world = SyntheticWorld(seed=6, height=H, width=W)
    path = write_synthetic_bag(tmp_path / "bag", world, 10)
    cfg = _cfg(source="rosbag", rosbag={"path": str(path), "val_fraction": 0.2,
                                        "depth_topic": "/stereo/left/depth",
                                        "cache_dir": str(tmp_path)})
    train, val = build_datasets(cfg, {"right"})
    assert (len(train), len(val)) == (8, 2)
    last_train = max(int(train[i]["stamp_ns"]) for i in range(len(train)))
    assert all(int(val[i]["stamp_ns"]) > last_train for i in range(len(val)))
    assert "depth_gt" in val[0] and float(val[0]["baseline"]) == pytest.approx(0.54)
    mono_train, mono_val = build_datasets(
        _cfg(source="rosbag", rosbag={"path": str(path), "val_path": str(path),
                                      "cache_dir": str(tmp_path)}), {"prev", "next"})
    assert "right" not in mono_train[0] and "prev" in mono_train[0]
    assert len(mono_val) == len(mono_train) == 8  # same bag: frames with both neighbours


def test_resize_then_crop_keeps_focal_and_shifts_the_principal_point():
    from depth_kd_core.data.config import DataCfg, SyntheticSourceCfg
    from depth_kd_core.data.datasets import build_datasets, load_size
    from depth_kd_core.data.synthetic.world import SyntheticWorld

    cfg = DataCfg(height=32, width=64, resize_height=64, resize_width=192,
                  synthetic=SyntheticSourceCfg(scenes=2, val_scenes=1, gt="dense", cache=False))
    cfg.augment.enabled = False
    train, val = build_datasets(cfg, {"depth_gt"})
    assert load_size(cfg) == (64, 192)
    full = SyntheticWorld(1000, 64, 192).sample(0)
    item = val[0]  # centre crop: rows 16..47, columns 64..127 of the 64 x 192 render
    assert item["left"].shape == (3, 32, 64)
    assert item["K"][0, 0].item() == pytest.approx(full["K"][0, 0])  # a crop keeps fx
    assert item["K"][0, 2].item() == pytest.approx(full["K"][0, 2] - 64)
    assert item["K"][1, 2].item() == pytest.approx(full["K"][1, 2] - 16)
    np.testing.assert_allclose(item["depth_gt"][0].numpy(), full["depth"][16:48, 64:128])
    assert train[0]["left"].shape == (3, 32, 64)  # random crop in training
    with pytest.raises(DataError, match="smaller than the crop"):
        build_datasets(DataCfg(height=64, width=64, resize_height=32, resize_width=192), set())


def test_synthetic_baseline_option_sets_the_rig_and_is_part_of_the_cache_key():
    kitti = build_datasets(_cfg(augment={"enabled": False}), {"right"})[1][0]
    wide = build_datasets(_cfg(augment={"enabled": False}, synthetic={
        "scenes": 3, "val_scenes": 2, "baseline": 1.5}), {"right"})[1][0]
    assert float(kitti["baseline"]) == pytest.approx(0.54)
    assert float(wide["baseline"]) == pytest.approx(1.5)
    torch.testing.assert_close(wide["left"], kitti["left"])  # same scene, same left camera
    assert not torch.allclose(wide["right"], kitti["right"])  # a wider rig sees another view
