"""Augmentations keep geometry right.

K follows every resize and crop, flips mirror cx and (stereo) swap the views so the pair
stays a left/right pair, depth moves without mixing, and colour jitter changes colours only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_kd_core.data import transforms as T
from depth_kd_core.data.camera import crop_intrinsics, resize_depth, scale_intrinsics
from depth_kd_core.data.schema import check_item, image_to_tensor, map_to_tensor
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.errors import DataError

H, W = 48, 160


@pytest.fixture(scope="module")
def frame():
    return SyntheticWorld(seed=3, height=H, width=W).sample(2)


def _item(frame, *, gt="depth", semantics=True) -> dict:
    item = {"left": image_to_tensor(frame["left"]), "right": image_to_tensor(frame["right"]),
            "K": torch.from_numpy(frame["K"]).float(),
            "baseline": torch.tensor(frame["baseline"], dtype=torch.float32),
            "depth_gt": map_to_tensor(frame[gt])}
    if semantics:
        item["semantics"] = map_to_tensor(frame["semantics"].astype(np.int64), torch.int64)
    return item


def _project(K: torch.Tensor, p: np.ndarray) -> np.ndarray:
    uvw = K.double().numpy() @ p
    return uvw[:2] / uvw[2]


def _warp_from_right(right: torch.Tensor, disp: np.ndarray) -> np.ndarray:
    """Sample the right image at (x - disp, y): what the left view should look like."""
    img = right.permute(1, 2, 0).numpy()
    x = np.arange(disp.shape[1])[None, :] - disp
    x0 = np.clip(np.floor(x).astype(int), 0, disp.shape[1] - 2)
    a = np.clip(x - x0, 0, 1)[..., None]
    rows = np.arange(disp.shape[0])[:, None]
    return (1 - a) * img[rows, x0] + a * img[rows, x0 + 1]


# --------------------------------------------------------------------------- intrinsics


def test_resize_gives_the_intrinsics_of_a_camera_rendered_at_that_size(frame):
    for h, w in ((24, 80), (96, 320), (30, 100)):
        out = T.Resize(h, w)(_item(frame))
        np.testing.assert_allclose(out["K"].numpy(), SyntheticWorld(0, h, w).K, rtol=1e-6)
        check_item(out)
        assert out["left"].shape == (3, h, w) and out["semantics"].dtype == torch.int64


def test_resize_by_two_is_the_block_mean(frame):
    item = _item(frame)
    out = T.Resize(H // 2, W // 2)(item)
    blocks = item["left"].reshape(3, H // 2, 2, W // 2, 2).mean(dim=(2, 4))
    torch.testing.assert_close(out["left"], blocks, atol=1e-6, rtol=0)


def test_shrinking_sparse_depth_keeps_the_closest_return_of_each_block(frame):
    lidar = frame["lidar_depth"]
    out = resize_depth(lidar, H // 2, W // 2)
    blocks = np.where(lidar > 0, lidar, np.inf).reshape(H // 2, 2, W // 2, 2).min(axis=(1, 3))
    np.testing.assert_array_equal(out, np.where(np.isinf(blocks), 0, blocks))
    assert (out > 0).sum() > 0.8 * (lidar > 0).sum() / 4 * 2  # nearest would keep about 1/4


def test_crop_shifts_the_principal_point_so_points_project_into_the_crop(frame):
    item = _item(frame)
    out = T.crop_item(item, 5, 17, 32, 100)
    assert out["K"][0, 2] == pytest.approx(float(item["K"][0, 2]) - 17)
    assert out["K"][1, 2] == pytest.approx(float(item["K"][1, 2]) - 5)
    p = np.array([1.3, -0.4, 9.0])
    np.testing.assert_allclose(_project(out["K"], p), _project(item["K"], p) - [17, 5])
    torch.testing.assert_close(out["depth_gt"], item["depth_gt"][:, 5:37, 17:117])
    center = T.Crop(32, 100, "center")(item)
    torch.testing.assert_close(center["left"], item["left"][:, 8:40, 30:130])


def test_crop_larger_than_the_image_is_refused(frame):
    with pytest.raises(DataError, match=r"crop 64x100 at \(y=0, x=0\) does not fit in the 48x160"):
        T.crop_item(_item(frame), 0, 0, 64, 100)


def test_random_scale_crop_is_a_resize_then_a_crop_with_matching_intrinsics(frame):
    item = _item(frame)
    out = T.RandomScaleCrop(H, W, (1.2, 1.5), generator=torch.Generator().manual_seed(1))(item)
    assert out["left"].shape == (3, H, W)
    hs = round(H * float(out["K"][1, 1] / item["K"][1, 1]))
    ws = round(W * float(out["K"][0, 0] / item["K"][0, 0]))
    assert 1.2 * W - 1 <= ws <= 1.5 * W + 1
    big = T.resize_item(item, hs, ws)
    x0 = round(float(big["K"][0, 2] - out["K"][0, 2]))
    y0 = round(float(big["K"][1, 2] - out["K"][1, 2]))
    expected = T.crop_item(big, y0, x0, H, W)
    for key in ("left", "right", "depth_gt", "semantics", "K"):
        torch.testing.assert_close(out[key], expected[key])
    with pytest.raises(ValueError, match="zooming out would need padding"):
        T.RandomScaleCrop(H, W, (0.75, 1.5))


# --------------------------------------------------------------------------- flips


def test_mono_flip_mirrors_everything_and_twice_is_identity(frame):
    item = _item(frame)
    del item["right"]
    flip = T.HorizontalFlip(prob=1.0)
    once = flip(item)
    torch.testing.assert_close(once["left"], item["left"].flip(-1))
    torch.testing.assert_close(once["depth_gt"], item["depth_gt"].flip(-1))
    assert once["K"][0, 2] == pytest.approx(W - 1 - float(item["K"][0, 2]))
    twice = flip(once)
    for key in item:
        torch.testing.assert_close(twice[key], item[key])


def test_stereo_flip_swaps_the_views_and_twice_restores_the_pair(frame):
    item = _item(frame, semantics=False)
    flip = T.HorizontalFlip(prob=1.0, stereo="swap")
    once = flip(item)
    torch.testing.assert_close(once["left"], item["right"].flip(-1))
    torch.testing.assert_close(once["right"], item["left"].flip(-1))
    assert float(once["baseline"]) == pytest.approx(float(item["baseline"]))
    twice = flip(once)
    for key in ("left", "right", "K", "baseline"):
        torch.testing.assert_close(twice[key], item[key])


def test_after_stereo_flip_the_depth_is_that_of_the_new_left_view(frame):
    item = _item(frame, semantics=False)
    out = T.HorizontalFlip(prob=1.0, stereo="swap")(item)
    new_depth = out["depth_gt"][0].numpy()
    truth = frame["depth_right"][:, ::-1]  # the new left is the mirrored old right camera
    both = (new_depth > 0) & (truth > 0)
    assert both.mean() > 0.5
    rel = np.abs(new_depth[both] - truth[both]) / truth[both]
    # exact up to the half-pixel rounding of forward warping; a few leaks at occlusion edges
    assert np.median(rel) < 1e-3 and (rel < 0.01).mean() > 0.9
    # the new right image, warped by the new left's disparity, reproduces the new left image
    fx, b = float(out["K"][0, 0]), float(out["baseline"])
    disp = np.where(new_depth > 0, fx * b / np.maximum(new_depth, 1e-6), 0)
    valid = (new_depth > 0) & (np.arange(W)[None, :] - disp > 1)
    left = out["left"].permute(1, 2, 0).numpy()
    err = np.abs(_warp_from_right(out["right"], disp) - left)[valid].mean()
    err_wrong = np.abs(_warp_from_right(out["right"], disp * 1.3) - left)[valid].mean()
    assert err < 0.02 and err_wrong > 2 * err


def test_stereo_flip_refuses_left_only_keys_and_mirror_mode_negates_baseline(frame):
    item = _item(frame)  # has semantics, which cannot move to the right camera
    with pytest.raises(DataError, match=r"cannot keep \['semantics'\] consistent"):
        T.HorizontalFlip(prob=1.0, stereo="swap")(item)
    out = T.HorizontalFlip(prob=1.0, stereo="mirror")(item)
    assert float(out["baseline"]) == pytest.approx(-float(item["baseline"]))
    torch.testing.assert_close(out["right"], item["right"].flip(-1))
    torch.testing.assert_close(out["semantics"], item["semantics"].flip(-1))


def test_flip_probability_zero_is_identity(frame):
    item = _item(frame)
    assert T.HorizontalFlip(prob=0.0)(item) is item


# --------------------------------------------------------------------------- colour


def test_brightness_scales_left_and_right_by_the_same_factor(frame):
    item = _item(frame)
    gen = torch.Generator().manual_seed(4)
    out = T.ColorJitter(brightness=0.4, generator=gen)(item)
    unclipped = (item["left"] * 1.4 < 1).all(0)
    f = float(out["left"][0][unclipped].sum() / item["left"][0][unclipped].sum())
    assert 0.6 <= f <= 1.4 and abs(f - 1) > 1e-3
    torch.testing.assert_close(out["left"], (item["left"] * f).clamp(0, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["right"], (item["right"] * f).clamp(0, 1), atol=1e-5, rtol=0)
    for key in ("K", "baseline", "depth_gt", "semantics"):
        assert out[key] is item[key]


def test_gamma_raises_pixels_to_one_power(frame):
    item = _item(frame)
    out = T.ColorJitter(gamma=0.3, generator=torch.Generator().manual_seed(2))(item)
    x, y = item["left"], out["left"]
    pick = (x > 0.2) & (x < 0.9)
    g = float(torch.log(y[pick][0]) / torch.log(x[pick][0]))
    assert 0.7 <= g <= 1.3 and abs(g - 1) > 1e-3
    torch.testing.assert_close(y, x.pow(g), atol=1e-5, rtol=0)


def test_compose_applies_in_order(frame):
    item = _item(frame)
    out = T.Compose([T.Resize(24, 80), T.Crop(20, 60, "center")])(item)
    expected = crop_intrinsics(scale_intrinsics(item["K"], 0.5, 0.5), 10, 2)
    torch.testing.assert_close(out["K"], expected)
