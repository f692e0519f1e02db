"""KITTI: calibration, velodyne ground truth, annotated PNG depth and the raw dataset.

Real calibration parses to the known rig, velodyne ground truth lands exactly where the LiDAR
sampled the synthetic world (closest point wins, Monodepth2's sub2ind quirk kept), 16-bit PNG
depth is value/256, and the raw dataset yields geometry-consistent items.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from depth_kd_core.data import depth_png, kitti
from depth_kd_core.data.camera import warp_depth_to_right
from depth_kd_core.data.schema import check_item
from depth_kd_core.data.synthetic.recording import depth_to_velodyne, write_synthetic_kitti
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.errors import DataError

from conftest import realdata_path

H, W = 48, 160


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(seed=7, height=H, width=W)


@pytest.fixture(scope="module")
def layout(world, tmp_path_factory):
    return write_synthetic_kitti(tmp_path_factory.mktemp("kitti"), world, 4)


@pytest.fixture(scope="module")
def frames(world):
    return world.sequence(0, 4)


def _scan(layout, k: int):
    return layout.drive_dir / "velodyne_points" / "data" / f"{k:010d}.bin"


# ----------------------------------------------------------------- real calibration files


@pytest.mark.realdata
def test_real_calibration_parses_to_the_kitti_rig():
    calib_dir = realdata_path("kitti_raw_calib")
    cam2cam = kitti.read_calib_file(calib_dir / "calib_cam_to_cam.txt")
    assert "calib_time" not in cam2cam  # a date, not numbers
    np.testing.assert_array_equal(cam2cam["S_rect_02"], [1242, 375])
    assert cam2cam["P_rect_03"].shape == (12,) and cam2cam["R_rect_00"].shape == (9,)
    velo = kitti.read_calib_file(calib_dir / "calib_velo_to_cam.txt")
    assert velo["R"].shape == (9,) and velo["T"][2] == pytest.approx(-0.2717806)
    stereo = kitti.stereo_calibration(calib_dir)
    assert (stereo.height, stereo.width) == (375, 1242)
    assert stereo.focal == pytest.approx(721.5377)
    # (P_rect_02[0,3] - P_rect_03[0,3]) / fx = (44.85728 + 339.5242) / 721.5377
    assert stereo.baseline == pytest.approx(0.532725, abs=1e-5)
    assert stereo.baseline == pytest.approx(0.54, abs=0.01)
    assert stereo.K[0, 2] == pytest.approx(609.5593 - 1)  # 1-based calibration -> 0-based


@pytest.mark.realdata
def test_real_calibration_projects_a_point_ahead_to_its_depth(tmp_path):
    calib_dir = realdata_path("kitti_raw_calib")
    points = np.array([[10.0, 0.0, 0.0, 1.0],  # 10 m ahead of the velodyne
                       [-5.0, 0.0, 0.0, 1.0]], np.float32)  # behind: dropped
    scan = tmp_path / "scan.bin"
    points.tofile(scan)
    depth = kitti.generate_depth_map(calib_dir, scan)
    assert depth.shape == (375, 1242)
    (v,), (u,) = np.nonzero(depth)
    # T = (-0.004, -0.076, -0.272): the velodyne origin is 0.27 m behind camera 0 (and 8 cm
    # above it), so a point 10 m ahead of the velodyne is ~9.73 m ahead of the camera
    assert depth[v, u] == pytest.approx(9.73, abs=0.01)
    assert 150 < v < 200 and 580 < u < 640
    vel = kitti.generate_depth_map(calib_dir, scan, vel_depth=True)
    assert vel[v, u] == 10.0  # velodyne x, as the Eigen test ground truth uses


# ----------------------------------------------------------------- generate_depth_map


def test_projected_ground_truth_equals_the_sampled_depth(layout, frames):
    for k in (0, 2):
        lidar = frames[k]["lidar_depth"]
        gt = kitti.generate_depth_map(layout.drive_dir.parent, _scan(layout, k), cam=2)
        assert gt.shape == (H, W) and (lidar > 0).sum() > 100
        np.testing.assert_array_equal(gt > 0, lidar > 0)
        np.testing.assert_allclose(gt, lidar, rtol=1e-5)


def test_camera_3_ground_truth_is_the_lidar_seen_from_the_right(layout, frames, world):
    gt3 = kitti.generate_depth_map(layout.drive_dir.parent, _scan(layout, 1), cam=3)
    expected = warp_depth_to_right(frames[1]["lidar_depth"], world.focal, world.baseline)
    both = (gt3 > 0) & (expected > 0)
    assert both.sum() > 0.9 * (expected > 0).sum()
    np.testing.assert_allclose(gt3[both], expected[both], rtol=1e-5)


def _depth_map_from(layout, world, pixels, tmp_path):
    """Ground truth of a scan made of points at the given (row, col, depth) pixels."""
    scans = []
    for v, u, z in pixels:  # one scan per point keeps the given order in the file
        d = np.zeros((H, W), np.float32)
        d[v, u] = z
        scans.append(depth_to_velodyne(d, world.K))
    scan = tmp_path / "scan.bin"
    np.concatenate(scans).tofile(scan)
    return kitti.generate_depth_map(layout.drive_dir.parent, scan)


def test_closest_point_wins_whatever_the_order(layout, world, tmp_path):
    for order in ([(10, 20, 30.0), (10, 20, 12.0)], [(10, 20, 12.0), (10, 20, 30.0)]):
        depth = _depth_map_from(layout, world, order, tmp_path)
        assert depth[10, 20] == pytest.approx(12.0, rel=1e-5)
        assert (depth > 0).sum() == 1


def test_sub2ind_quirk_links_the_last_column_to_the_next_rows_first(layout, world, tmp_path):
    # Monodepth2's index row*(W-1) + col - 1 makes (5, W-1) and (6, 0) one "duplicate";
    # the first point's pixel gets the minimum of both, the other keeps its own value.
    depth = _depth_map_from(layout, world, [(5, W - 1, 20.0), (6, 0, 8.0)], tmp_path)
    assert depth[5, W - 1] == pytest.approx(8.0, rel=1e-5)
    assert depth[6, 0] == pytest.approx(8.0, rel=1e-5)
    depth = _depth_map_from(layout, world, [(6, 0, 20.0), (5, W - 1, 8.0)], tmp_path)
    assert depth[6, 0] == pytest.approx(8.0, rel=1e-5)
    assert depth[5, W - 1] == pytest.approx(8.0, rel=1e-5)
    depth = _depth_map_from(layout, world, [(5, W - 1, 8.0), (6, 0, 20.0)], tmp_path)
    assert depth[5, W - 1] == pytest.approx(8.0, rel=1e-5)
    assert depth[6, 0] == pytest.approx(20.0, rel=1e-5)


def test_bad_calibration_and_scans_are_named(layout, tmp_path):
    (tmp_path / "calib_cam_to_cam.txt").write_text("S_rect_02: 160 48\nP_rect_02: 1 2 3\n")
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    with pytest.raises(DataError, match=r"calib_cam_to_cam.txt: key 'R_rect_00' must hold 9"):
        kitti.generate_depth_map(tmp_path, _scan(layout, 0))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(_scan(layout, 0).read_bytes()[:-6])
    with pytest.raises(DataError, match=r"broken.bin holds .* not a multiple of 4"):
        kitti.generate_depth_map(layout.drive_dir.parent, broken)
    (tmp_path / "bad.txt").write_text("no colon here\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected 'key: values'"):
        kitti.read_calib_file(tmp_path / "bad.txt")


# ----------------------------------------------------------------- 16-bit PNG depth


def test_depth_png_is_value_over_256(tmp_path):
    import cv2

    raw = np.array([[0, 1, 5120, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "gt.png"), raw)
    np.testing.assert_array_equal(depth_png.read_depth_png(tmp_path / "gt.png"),
                                  [[0.0, 1 / 256, 20.0, 65535 / 256]])
    depth = np.array([[0.0, 12.5, 0.001, np.nan, 300.0]], np.float32)
    depth_png.write_depth_png(tmp_path / "out.png", depth)
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, [[0, 3200, 1, 0, 65535]])  # devkit: max(d*256, 1)
    cv2.imwrite(str(tmp_path / "eight.png"), np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"eight.png is uint8 .* expected a single-channel 16-bit"):
        depth_png.read_depth_png(tmp_path / "eight.png")


# ----------------------------------------------------------------- KittiRawDataset


def test_left_sample_matches_the_world(layout, frames, world):
    ds = kitti.KittiRawDataset(layout.root, layout.split_file, sequence=True)
    item = ds[0]  # frame 1, side l
    check_item(item)
    f = frames[1]
    np.testing.assert_array_equal((item["left"] * 255).round().byte().permute(1, 2, 0).numpy(),
                                  f["left"])
    np.testing.assert_array_equal((item["right"] * 255).round().byte().permute(1, 2, 0).numpy(),
                                  f["right"])
    np.testing.assert_allclose(item["K"].numpy(), world.K, rtol=1e-6)
    assert float(item["baseline"]) == pytest.approx(0.54, abs=1e-6)
    np.testing.assert_allclose(item["depth_gt"][0].numpy(), f["lidar_depth"], rtol=1e-5)
    np.testing.assert_array_equal((item["prev"] * 255).round().byte().permute(1, 2, 0).numpy(),
                                  frames[0]["left"])
    np.testing.assert_array_equal((item["next"] * 255).round().byte().permute(1, 2, 0).numpy(),
                                  frames[2]["left"])
    assert int(item["stamp_ns"] - ds[1]["stamp_ns"]) == -100_000_000  # timestamps.txt, 10 Hz


def test_right_sample_is_the_mirrored_pair_with_camera_3_ground_truth(layout, frames, world):
    ds = kitti.KittiRawDataset(layout.root, layout.split_file, gt="annotated",
                               annotated_root=layout.annotated_root)
    item = ds[2]  # frame 1, side r
    f = frames[1]
    torch.testing.assert_close(item["left"], torch.from_numpy(
        f["right"][:, ::-1].copy()).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(item["right"], torch.from_numpy(
        f["left"][:, ::-1].copy()).permute(2, 0, 1).float() / 255)
    assert float(item["K"][0, 2]) == pytest.approx(W - 1 - world.K[0, 2])
    assert float(item["baseline"]) > 0
    np.testing.assert_allclose(item["depth_gt"][0].numpy(), f["depth_right"][:, ::-1],
                               atol=1 / 256)


def test_resized_items_scale_intrinsics_and_collate(layout, world):
    ds = kitti.KittiRawDataset(layout.root, layout.split_file, height=24, width=80)
    batch = default_collate([ds[0], ds[3]])
    assert batch["left"].shape == (2, 3, 24, 80) and batch["depth_gt"].shape == (2, 1, 24, 80)
    np.testing.assert_allclose(batch["K"][0].numpy(), SyntheticWorld(0, 24, 80).K, rtol=1e-6)


def test_dataset_errors_name_the_file(layout, tmp_path):
    with pytest.raises(DataError, match=r"split file .*nothing.txt does not exist"):
        kitti.KittiRawDataset(layout.root, tmp_path / "nothing.txt")
    (tmp_path / "split.txt").write_text("2011_09_26/x 3 l\n2011_09_26/x three l\n")
    with pytest.raises(DataError, match=r"split.txt:2: expected '<date>/<drive> <frame> <l\|r>'"):
        kitti.KittiRawDataset(layout.root, tmp_path / "split.txt")
    (tmp_path / "split.txt").write_text(f"{layout.drive_dir.parent.name}/"
                                        f"{layout.drive_dir.name} 17 l\n")
    with pytest.raises(DataError, match=r"image_02/data/0000000017.png \(or .jpg\) does not"):
        kitti.KittiRawDataset(layout.root, tmp_path / "split.txt")[0]
    ds = kitti.KittiRawDataset(layout.root, layout.split_file, gt="annotated",
                               annotated_root=tmp_path)
    with pytest.raises(DataError, match=r"annotated depth .* does not exist"):
        ds[0]
