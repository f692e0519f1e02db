"""The classical teacher: dense SGBM and its raw mode.

Dense SGBM (border padding, left-right check, WLS hole filling, per-pixel confidence) and
its raw mode, on synthetic stereo frames with exact depth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.errors import ConfigError, DepthKDError
from depth_kd_core.models.registry import create_model

RAW = {"fill": "none", "pad_border": False}  # the matcher as it was: holes stay holes


@pytest.fixture(scope="module")
def frames():
    """Eight 96x320 frames of held-out scenes as tensors, with K, baseline and true depth."""
    world = SyntheticWorld(1000, 96, 320)
    fr = [world.sample(i) for i in range(8)]
    img = lambda key: torch.from_numpy(  # noqa: E731
        np.stack([f[key] for f in fr])).permute(0, 3, 1, 2).float() / 255
    K = torch.from_numpy(np.stack([f["K"] for f in fr])).float()
    baseline = torch.tensor([f["baseline"] for f in fr], dtype=torch.float32)
    depth = torch.from_numpy(np.stack([f["depth"] for f in fr]))[:, None]
    return img("left"), img("right"), K, baseline, depth


def _run(frames, **cfg):
    left, right, K, baseline, _ = frames
    return create_model("sgbm_teacher", num_disparities=64, **cfg)(left, right, K=K,
                                                                    baseline=baseline)


def _abs_rel(pred, gt, mask):
    m = mask & (gt > 0) & (gt < 80) & (pred > 0)
    return float(((pred[m] - gt[m]).abs() / gt[m]).mean())


@pytest.fixture(scope="module")
def dense(frames):
    return _run(frames)


@pytest.fixture(scope="module")
def raw(frames):
    return _run(frames, **RAW)


def test_dense_teacher_covers_the_frame_including_the_left_border(frames, dense, raw):
    gt = frames[4]
    scored = (gt > 0) & (gt < 80)
    dense_cov = float(((dense["depth"] > 0) & scored).sum() / scored.sum())
    raw_cov = float(((raw["depth"] > 0) & scored).sum() / scored.sum())
    assert dense_cov >= 0.95 and raw_cov < 0.7
    border = scored[..., :64]
    assert not (raw["depth"][..., :64] > 0).any()  # raw SGBM cannot match the left 64 columns
    assert float(((dense["depth"][..., :64] > 0) & border).sum() / border.sum()) > 0.9


def test_dense_teacher_keeps_raw_accuracy_where_raw_sgbm_matched(frames, dense, raw):
    gt = frames[4]
    on_raw = raw["depth"] > 0
    assert _abs_rel(dense["depth"], gt, on_raw) <= _abs_rel(raw["depth"], gt, on_raw) + 0.03
    assert _abs_rel(dense["depth"], gt, dense["depth"] > 0) < 0.15  # the filled holes too


def test_consistent_pixels_keep_their_raw_disparity_and_only_holes_are_filled(frames, dense):
    padded_raw = _run(frames, fill="none")  # same padding and left-right check, no filling
    matched = padded_raw["disp"] > 0
    assert torch.equal(dense["disp"][matched], padded_raw["disp"][matched])
    assert (dense["confidence"][~matched] <= 0.5).all()  # filled: at most fill_confidence


def test_confidence_ranks_the_teachers_errors(frames, dense):
    gt = frames[4]
    m = (gt > 0) & (gt < 80) & (dense["depth"] > 0)
    err = ((dense["depth"] - gt).abs() / gt)[m]
    conf = dense["confidence"][m]
    assert conf.min() >= 0 and conf.max() <= 1
    low, high = conf < 0.1, conf >= 0.6
    assert err[low].mean() > 3 * err[high].mean()
    assert (dense["confidence"][dense["depth"] == 0] == 0).all()


def test_fill_confidence_caps_filled_pixels(frames):
    out = _run(frames, fill_confidence=0.2)
    filled = (out["depth"] > 0) & (out["confidence"] < 0.2 + 1e-6)
    assert filled.float().mean() > 0.1  # a fair share of the frame is filled ...
    assert out["confidence"][out["confidence"] < 0.25].max() <= 0.2 + 1e-6  # ... at <= 0.2


def test_beyond_range_is_invalid_never_clamped(frames):
    out = _run(frames, max_depth=20.0)
    depth = out["depth"]
    assert depth.max() <= 20.0
    assert not (depth == 20.0).any()  # no pixel parked at the range limit
    far = (frames[4] > 30) & (frames[4] < 80)
    assert (depth[far] == 0).float().mean() > 0.9  # far pixels are holes (NaN in ROS)
    assert (out["valid"] == (depth > 0).float()).all()


def test_a_too_wide_disparity_search_is_refused_with_the_field_named(frames):
    left, right, K, baseline, _ = frames
    model = create_model("sgbm_teacher", num_disparities=320, fill="none", pad_border=False)
    with pytest.raises(ValueError, match=r"num_disparities \(320\) must be smaller than the "
                                         r"image width \(320 px\)"):
        model(left[:1], right[:1], K=K[:1], baseline=baseline[:1])


def test_wls_needs_the_left_right_check():
    with pytest.raises(ConfigError, match="fill=wls needs lr_check=true"):
        create_model("sgbm_teacher", lr_check=False)


def test_a_teacher_run_that_matches_nothing_fails_with_a_message():
    from depth_kd_core.recipes.registry import create_recipe

    recipe = create_recipe("sgbm")
    with pytest.raises(DepthKDError, match="found no valid depth on any validation pixel"):
        recipe.check_validation(None)
    with pytest.raises(DepthKDError, match="found no valid depth on any validation frame"):
        recipe.check_validation({"coverage": 0.0})
    recipe.check_validation({"coverage": 0.4, "abs_rel": 0.1})  # a working teacher passes


def test_featureless_pair_gives_no_depth_and_zero_confidence():
    flat = torch.full((1, 3, 64, 192), 0.5)
    out = create_model("sgbm_teacher", num_disparities=32)(flat, flat.clone())
    assert (out["depth"] == 0).all() and (out["confidence"] == 0).all()
