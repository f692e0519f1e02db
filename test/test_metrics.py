"""Depth metrics against values computed by hand (Eigen §6 and KITTI devkit §7 definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_kd_core.metrics import METRIC_KEYS, MetricAccumulator, crop_mask, depth_metrics

# gt has three valid pixels (2, 4, 8 m) and one invalid (0); pred is (1, 4, 10) there.
GT = np.array([[2.0, 4.0], [0.0, 8.0]])
PRED = np.array([[1.0, 4.0], [5.0, 10.0]])


def test_every_key_by_hand():
    m = depth_metrics(PRED, GT)
    assert set(m) == set(METRIC_KEYS)
    assert m["abs_rel"] == pytest.approx((1 / 2 + 0 + 2 / 8) / 3)
    assert m["sq_rel"] == pytest.approx((1 / 2 + 0 + 4 / 8) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(2) ** 2 + math.log(0.8) ** 2) / 3))
    # ratios max(g/p, p/g) = 2, 1, 1.25; thresholds 1.25, 1.5625, 1.953125 (strict <)
    assert (m["a1"], m["a2"], m["a3"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    e = [math.log(2), 0.0, math.log(0.8)]
    mean_e, mean_e2 = sum(e) / 3, sum(x * x for x in e) / 3
    assert m["silog"] == pytest.approx(100 * math.sqrt(mean_e2 - mean_e**2))
    assert m["kitti_abs_rel"] == pytest.approx(100 * (1 / 2 + 0 + 2 / 8) / 3)
    assert m["kitti_sq_rel"] == pytest.approx(100 * (1 / 4 + 0 + 4 / 64) / 3)  # divides by gt^2
    assert m["irmse"] == pytest.approx(
        1000 * math.sqrt(((0.5 - 1) ** 2 + (1 / 8 - 1 / 10) ** 2) / 3))


def test_perfect_prediction_scores_zero_error():
    gt = np.random.default_rng(0).uniform(1, 70, (20, 30))
    m = depth_metrics(gt.copy(), gt)
    for key in METRIC_KEYS:
        expected = 1.0 if key in ("a1", "a2", "a3") else 0.0
        assert m[key] == pytest.approx(expected, abs=1e-9), key


def test_range_excludes_gt_and_clamps_prediction():
    gt = np.array([[50.0, 90.0, 0.0005]])  # 90 m > max_depth, 0.5 mm < min_depth: both invalid
    pred = np.array([[100.0, 1.0, 1.0]])  # 100 m is clamped to 80 m before scoring
    m = depth_metrics(pred, gt, max_depth=80.0)
    assert m["abs_rel"] == pytest.approx(30.0 / 50.0)


def test_prediction_below_min_depth_is_clamped_up():
    m = depth_metrics(np.array([[0.0]]), np.array([[2.0]]), min_depth=0.5)
    assert m["abs_rel"] == pytest.approx((2.0 - 0.5) / 2.0)


def test_median_scaling_removes_a_global_scale():
    gt = np.random.default_rng(1).uniform(2, 60, (16, 16))
    assert depth_metrics(gt * 0.37, gt, median_scaling=True)["abs_rel"] == pytest.approx(
        0, abs=1e-12)
    assert depth_metrics(gt * 0.37, gt)["abs_rel"] == pytest.approx(0.63)


def test_garg_crop_bounds():
    # 100 x 100: Garg rows [40, 99), columns [3, 96)
    mask = crop_mask(100, 100, "garg")
    assert mask[40, 3] and mask[98, 95]
    assert not mask[39, 50] and not mask[99, 50] and not mask[50, 2] and not mask[50, 96]
    gt = np.full((100, 100), 10.0)
    pred = gt.copy()
    pred[39, :] = 20.0  # just outside the crop: ignored
    assert depth_metrics(pred, gt, crop="garg")["abs_rel"] == 0.0
    pred[40, 50] = 20.0  # inside: one pixel of (99-40)*(96-3) is off by 100 %
    assert depth_metrics(pred, gt, crop="garg")["abs_rel"] == pytest.approx(1.0 / (59 * 93))


def test_eigen_crop_bounds():
    mask = crop_mask(100, 100, "eigen")  # rows [33, 91), columns [3, 96)
    assert mask[33, 3] and mask[90, 95] and not mask[32, 50] and not mask[91, 50]
    assert mask.sum() == 58 * 93


def test_batches_average_per_image_not_per_pixel():
    gt = np.zeros((2, 1, 2, 2))
    pred = np.ones((2, 1, 2, 2))
    gt[0, 0, 0, 0], pred[0, 0, 0, 0] = 2.0, 1.0  # image 0: one pixel, abs_rel 0.5
    gt[1, 0] = 1.0  # image 1: four perfect pixels
    m = depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt))
    assert m["abs_rel"] == pytest.approx(0.25)  # pooled pixels would give 0.1


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="no valid ground-truth"):
        depth_metrics(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="crop"):
        depth_metrics(np.ones((2, 2)), np.ones((2, 2)), crop="kb")


def test_rolling_accumulator_keeps_last_n():
    acc = MetricAccumulator(window=2)
    for scale in (2.0, 1.0, 1.0):  # first image abs_rel 1.0, then two perfect
        acc.update(np.full((4, 4), 5.0 * scale), np.full((4, 4), 5.0))
    assert len(acc) == 2 and acc.compute()["abs_rel"] == 0.0
    assert acc.update(np.ones((2, 2)), np.zeros((2, 2))) is None  # nothing valid: skipped
