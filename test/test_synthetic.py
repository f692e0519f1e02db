"""Synthetic stereo world: exact geometry, photo-consistency, determinism, class coverage."""

from __future__ import annotations

import numpy as np
import pytest

from depth_kd_core.data.schema import check_item
from depth_kd_core.data.synthetic import scene as sc
from depth_kd_core.data.synthetic.dataset import SyntheticStereoDataset
from depth_kd_core.data.synthetic.world import SyntheticWorld

H, W = 96, 320


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(seed=5, height=H, width=W)


@pytest.fixture(scope="module")
def frame(world):
    return world.sample(3)


def _warp_horizontal(img: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Sample img at (x - shift, y) with linear interpolation; NaN outside the image."""
    h, w = shift.shape
    x = np.arange(w)[None, :] - shift
    x0 = np.floor(x).astype(int)
    a = (x - x0)[..., None]
    inside = (x0 >= 0) & (x0 + 1 < w)
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    rows = np.arange(h)[:, None]
    out = (1 - a) * img[rows, x0c] + a * img[rows, x1c]
    out[~inside] = np.nan
    return out


def test_frame_fields_and_types(frame):
    assert frame["left"].shape == (H, W, 3) and frame["left"].dtype == np.uint8
    assert frame["right"].shape == (H, W, 3) and frame["right"].dtype == np.uint8
    for key in ("depth", "depth_right", "disparity", "lidar_depth"):
        assert frame[key].shape == (H, W) and frame[key].dtype == np.float32, key
    assert frame["semantics"].dtype == np.uint8
    assert frame["K"].shape == (3, 3) and frame["K"][0, 0] == pytest.approx(0.58 * W)
    assert frame["baseline"] == pytest.approx(0.54)
    assert frame["T_world_cam"][2, 3] == pytest.approx(1.65, abs=0.05)  # camera height


def test_depth_times_disparity_is_focal_times_baseline(frame):
    d, disp = frame["depth"], frame["disparity"]
    valid = d > 0
    assert valid.mean() > 0.5
    np.testing.assert_allclose(d[valid] * disp[valid], frame["K"][0, 0] * 0.54, rtol=1e-5)
    assert (disp[~valid] == 0).all()


def test_sky_is_depth_zero_and_class_sky(frame):
    sky = frame["semantics"] == sc.SKY
    assert sky.any()
    assert (frame["depth"][sky] == 0).all() and (frame["depth"][~sky] > 0).all()


def test_right_image_warped_by_gt_disparity_reproduces_left(frame):
    left = frame["left"].astype(np.float64)
    right = frame["right"].astype(np.float64)
    disp = frame["disparity"]
    # non-occluded: the right camera sees the same surface (its depth matches)
    depth_seen = _warp_horizontal(frame["depth_right"][..., None].astype(np.float64), disp)[..., 0]
    visible = (disp > 0) & (np.abs(depth_seen - frame["depth"]) < 0.02 * frame["depth"])
    assert visible.mean() > 0.6
    err_gt = np.nanmean(np.abs(_warp_horizontal(right, disp) - left)[visible])
    err_wrong = np.nanmean(np.abs(_warp_horizontal(right, disp * 1.3) - left)[visible])
    assert err_gt < 2.0  # grey levels out of 255
    assert err_wrong > 4 * err_gt


def test_consecutive_frames_reproject_with_pose_and_depth(world):
    f0, f1 = world.sequence(11, length=2)
    K = f0["K"]
    T_1_0 = np.linalg.inv(f1["T_world_cam"]) @ f0["T_world_cam"]

    def reproject(T):
        v, u = np.mgrid[0:H, 0:W]
        z = f0["depth"]
        pts = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z,
                        np.ones_like(z)])
        p1 = np.tensordot(T, pts, axes=1)
        u1 = np.round(K[0, 0] * p1[0] / p1[2] + K[0, 2]).astype(int)
        v1 = np.round(K[1, 1] * p1[1] / p1[2] + K[1, 2]).astype(int)
        ok = (z > 0) & (p1[2] > 0.1) & (u1 >= 0) & (u1 < W) & (v1 >= 0) & (v1 < H)
        depth_agree = np.zeros_like(ok)
        depth_agree[ok] = np.abs(f1["depth"][v1[ok], u1[ok]] - p1[2][ok]) < 0.03 * p1[2][ok]
        colour_err = np.abs(f1["left"][v1[depth_agree], u1[depth_agree]].astype(float)
                            - f0["left"][depth_agree].astype(float)).mean()
        return depth_agree.sum() / ok.sum(), colour_err

    agree, colour_err = reproject(T_1_0)
    assert agree > 0.85 and colour_err < 8.0
    T_wrong = T_1_0.copy()
    T_wrong[0, 3] += 0.5  # half a metre of lateral error
    assert reproject(T_wrong)[0] < agree - 0.2
    assert not np.allclose(f0["T_world_cam"], f1["T_world_cam"])  # the camera moved


def test_deterministic_per_seed_and_different_across_seeds():
    a = SyntheticWorld(seed=1, height=48, width=160).sample(0)
    b = SyntheticWorld(seed=1, height=48, width=160).sample(0)
    c = SyntheticWorld(seed=2, height=48, width=160).sample(0)
    assert np.array_equal(a["left"], b["left"]) and np.array_equal(a["depth"], b["depth"])
    assert np.abs(a["depth"] - c["depth"]).mean() > 1.0


def test_sequence_frames_do_not_depend_on_length(world):
    short = world.sequence(4, 1)[0]
    long = world.sequence(4, 3)[0]
    assert np.array_equal(short["left"], long["left"])
    assert np.array_equal(world.sample(4)["depth"], short["depth"])


def test_all_four_x_distill_groups_appear_in_typical_frames():
    groups = {"thin": {5, 6, 7}, "people_vehicles": set(range(11, 19)),
              "background": {2, 3, 4, 8, 9, 10}, "ground": {0, 1}}
    world = SyntheticWorld(seed=9, height=H, width=W)
    counts = dict.fromkeys(groups, 0)
    n = 10
    for i in range(n):
        present = set(np.unique(world.sample(i)["semantics"]).tolist())
        assert present <= set(range(19)) | {255}
        for g, ids in groups.items():
            counts[g] += bool(present & ids)
    assert all(c >= 0.8 * n for c in counts.values()), counts


def test_lidar_is_sparse_scan_lines_of_depth(frame):
    lidar = frame["lidar_depth"]
    hit = lidar > 0
    assert 0.02 < hit.mean() < 0.08  # KITTI-like density
    np.testing.assert_array_equal(lidar[hit], frame["depth"][hit])
    assert hit.any(axis=1).sum() < 0.7 * H  # returns lie on scan lines, not every row
    assert not hit[frame["semantics"] == sc.SKY].any()


def test_dataset_items_follow_the_batch_schema():
    ds = SyntheticStereoDataset(seed=0, length=2, height=64, width=192, sequence=True, gt="lidar")
    item = ds[1]
    check_item(item)
    assert item["left"].shape == (3, 64, 192)
    assert 0 <= item["left"].min() and item["left"].max() <= 1
    assert set(item) >= {"left", "right", "K", "baseline", "depth_gt", "semantics", "prev", "next"}
    assert (item["depth_gt"] > 0).float().mean() < 0.1  # sparse LiDAR GT
    assert not np.array_equal(item["prev"].numpy(), item["left"].numpy())
    with pytest.raises(IndexError):
        ds[2]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="too small"):
        SyntheticWorld(height=4, width=4)
    with pytest.raises(ValueError, match="sequence length"):
        SyntheticWorld(height=32, width=64).sequence(0, 0)
