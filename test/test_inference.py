"""Inference core.

Checkpoint -> metres at the input resolution, NaN where invalid, sigma in metres,
focal-length rescaling by hand, timings, device choice, stereo teachers (SGBM and a network
checkpoint).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from depth_kd_core import visualize
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.depth_maps import resize_depth_nan, resize_valid
from depth_kd_core.errors import CheckpointError, ConfigError, DepthKDError, ImageError
from depth_kd_core.inference import DepthEstimator, StereoDepthEstimator, estimator_for_model
from depth_kd_core.models import create_model
from depth_kd_core.runtime import select_device

from conftest import requires_cuda
from inference_helpers import (
    NET_H,
    NET_W,
    TRAIN_FOCAL_PX,
    save_model,
    tiny_checkpoint,
    tiny_model,
    torch_single_thread,  # noqa: F401 - module fixture
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

RNG = np.random.default_rng(0)


def _image(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiekd_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiekd.pt", "tiekd_student")


@pytest.fixture(scope="module")
def tiekd(tiekd_ckpt):
    return DepthEstimator.from_checkpoint(tiekd_ckpt, device="cpu")


@pytest.mark.parametrize("size", [(NET_H, NET_W), (50, 171), (150, 400)])
def test_output_has_the_input_size_and_model_range(tiekd, size):
    pred = tiekd.predict(_image(*size))
    assert pred.depth.shape == size and pred.depth.dtype == np.float32
    assert pred.sigma.shape == size and pred.sigma.dtype == np.float32
    cfg = tiekd.cfg
    assert np.isfinite(pred.depth).all()
    assert cfg.min_depth <= pred.depth.min() and pred.depth.max() <= cfg.max_depth
    assert pred.has_sigma and np.isfinite(pred.sigma).all() and (pred.sigma >= 0).all()


def test_at_network_size_prediction_equals_the_model_on_rgb_in_0_1(tiekd_ckpt, tiekd):
    img = _image(NET_H, NET_W)
    model = tiny_model("tiekd_student", focal_px=TRAIN_FOCAL_PX).eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0)
    pred = tiekd.predict(img)
    np.testing.assert_allclose(pred.depth, ref["depth"][0, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(pred.sigma, ref["sigma"][0, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_focal_scaling_by_hand(tiekd, tiekd_ckpt):
    img = _image(2 * NET_H, 2 * NET_W)  # network input = image / 2
    plain = tiekd.predict(img)
    assert plain.scale == 1.0 and "no camera intrinsics" in plain.scale_note
    # fx 400 px at 384 px wide is 200 px at the 192 px network input: twice the training focal
    K = np.array([[4 * TRAIN_FOCAL_PX, 0, NET_W], [0, 4 * TRAIN_FOCAL_PX, NET_H], [0, 0, 1]])
    scaled = tiekd.predict(img, K=K)
    assert scaled.scale == pytest.approx(2.0) and scaled.scale_note == ""
    np.testing.assert_allclose(scaled.depth, 2 * plain.depth, rtol=1e-6)
    np.testing.assert_allclose(scaled.sigma, 2 * plain.sigma, rtol=1e-6)
    off = DepthEstimator.from_checkpoint(tiekd_ckpt, device="cpu", focal_scaling=False)
    unscaled = off.predict(img, K=K)
    assert unscaled.scale == 1.0 and unscaled.scale_note == "focal scaling disabled"
    np.testing.assert_allclose(unscaled.depth, plain.depth, rtol=1e-6)


def test_focal_scaling_skipped_with_reason_when_the_checkpoint_has_no_focal(tmp_path):
    est = DepthEstimator.from_checkpoint(
        tiny_checkpoint(tmp_path / "nofocal.pt", focal_px=0.0), device="cpu")
    pred = est.predict(_image(NET_H, NET_W), K=np.diag([500.0, 500.0, 1.0]))
    assert pred.scale == 1.0 and "focal_px = 0" in pred.scale_note


def test_timings_present_and_consistent(tiekd):
    t = tiekd.predict(_image(80, 240)).timings_ms
    assert set(t) == {"preprocess", "inference", "postprocess", "total"}
    assert all(v >= 0 for v in t.values()) and t["inference"] > 0
    assert t["total"] == pytest.approx(t["preprocess"] + t["inference"] + t["postprocess"],
                                       rel=1e-6)


def test_model_without_sigma_gives_nan_sigma_and_relative_kind_is_flagged(tmp_path):
    est = DepthEstimator.from_checkpoint(
        tiny_checkpoint(tmp_path / "md.pt", "monodepth_student"), device="cpu")
    pred = est.predict(_image(70, 200))
    assert not pred.has_sigma and np.isnan(pred.sigma).all() and pred.sigma.shape == (70, 200)
    assert np.isfinite(pred.depth).all() and not est.metric


def test_invalid_model_output_becomes_nan():
    model = tiny_model()

    def mark_left_quarter_invalid(module, inputs, out):  # the core's "0 = invalid" contract
        out["depth"][..., : NET_W // 4] = 0.0
        out["depth"][..., 0, -1] = float("nan")
        return out

    model.register_forward_hook(mark_left_quarter_invalid)
    est = DepthEstimator(model, torch.device("cpu"))
    pred = est.predict(_image(2 * NET_H, 2 * NET_W))
    quarter = NET_W // 2  # the invalid columns at the output size
    assert np.isnan(pred.depth[:, : quarter - 1]).all()
    assert np.isfinite(pred.depth[2:, quarter + 1:]).all()
    assert np.isnan(pred.depth[:2, -2:]).all()  # the NaN pixel, upsampled 2x
    assert np.array_equal(np.isnan(pred.sigma), np.isnan(pred.depth))


def test_resize_never_blends_invalid_pixels_into_valid_ones():
    depth = torch.full((1, 1, 8, 8), 10.0)
    depth[..., :, :3] = 0.0  # invalid block on the left
    out = resize_valid(depth, depth > 0, (32, 32))[0, 0].numpy()
    valid = np.isfinite(out)
    assert np.all(out[valid] == pytest.approx(10.0))  # no value between 0 and 10 leaks in
    assert np.isnan(out[:, :11]).all() and valid[:, 13:].all()
    small = resize_depth_nan(np.where(np.eye(6) > 0, np.nan, 4.0).astype(np.float32), 3, 3)
    assert small.shape == (3, 3) and np.all(small[np.isfinite(small)] == pytest.approx(4.0))


def test_out_size_and_bad_inputs(tiekd):
    assert tiekd.predict(_image(64, 200), out_size=(32, 100)).depth.shape == (32, 100)
    for bad in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                np.zeros((0, 10, 3), np.uint8)):
        with pytest.raises(ImageError, match="H x W x 3 uint8"):
            tiekd.predict(bad)


def test_device_selection(monkeypatch, tiekd_ckpt, caplog):
    assert select_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device(None).type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device(None).type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(None).type == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ConfigError, match="not a torch device"):
        select_device("gpu-please")
    # the trainer's and evaluate's picker too: "auto" chooses, errors name the setting
    assert select_device("auto", 0, "trainer.device").type == "cpu"
    with pytest.raises(ConfigError, match="eval.device='gpu' is not a torch device"):
        select_device("gpu", 0, "eval.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("auto", 1, "trainer.device") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="trainer.device=cuda:2 but this machine has 2"):
        select_device("cuda:2", 0, "trainer.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        est = DepthEstimator.from_checkpoint(tiekd_ckpt, device="cpu", fp16=True)
    assert est.device.type == "cpu" and not est.fp16 and "fp16 needs a CUDA" in caplog.text
    assert next(est.model.parameters()).device.type == "cpu"


@requires_cuda
def test_cuda_fp16_close_to_fp32(tiekd_ckpt):
    img = _image(96, 300)
    ref = DepthEstimator.from_checkpoint(tiekd_ckpt, device="cpu").predict(img)
    est = DepthEstimator.from_checkpoint(tiekd_ckpt, device=None, fp16=True)
    assert est.device.type == "cuda" and est.fp16
    pred = est.predict(img)
    np.testing.assert_allclose(pred.depth, ref.depth, rtol=0.02)


def test_wrong_kind_of_checkpoint_is_refused(tmp_path):
    stereo = tiny_checkpoint(tmp_path / "teacher.pt", "stereo_concat_teacher")
    with pytest.raises(CheckpointError, match="StereoDepthEstimator"):
        DepthEstimator.from_checkpoint(stereo, device="cpu")
    with pytest.raises(DepthKDError, match="not found"):
        DepthEstimator.from_checkpoint(tmp_path / "missing.pt", device="cpu")


@pytest.fixture(scope="module")
def stereo_frame():
    world = SyntheticWorld(0, 96, 320)
    return world.sample(0), world.K, world.baseline


def test_sgbm_teacher_metric_depth_with_nan_where_unmatched(stereo_frame):
    frame, K, baseline = stereo_frame
    est = StereoDepthEstimator.from_spec("sgbm", num_disparities=64, fill="none",
                                         pad_border=False)  # raw SGBM
    pred = est.predict(frame["left"], frame["right"], K, baseline)
    assert pred.depth.shape == (96, 320) and not pred.has_sigma
    assert np.isnan(pred.depth[:, :64]).all()  # SGBM searches 64 px: no match at the border
    dense = StereoDepthEstimator.from_spec("sgbm", num_disparities=64).predict(
        frame["left"], frame["right"], K, baseline)
    assert np.isfinite(dense.depth[:, :64]).mean() > 0.9  # the default fills the border
    gt = frame["depth"]
    ok = np.isfinite(pred.depth) & (gt > 0)
    assert ok.mean() > 0.3
    assert np.median(np.abs(pred.depth[ok] - gt[ok]) / gt[ok]) < 0.1
    with pytest.raises(ConfigError, match="needs K and a positive baseline"):
        est.predict(frame["left"], frame["right"], None, baseline)


def test_a_model_declared_classical_runs_as_sgbm_does(tmp_path, stereo_frame):
    """SGBM registered under another name (test_classical_matcher, tiny.py) runs as SGBM does.

    The estimator reads ``cfg.classical``, not the name, so it runs at the camera's size,
    unscaled, and needs K and a baseline, whether built in memory or loaded from a checkpoint.
    """
    frame, K, baseline = stereo_frame
    raw = dict(num_disparities=64, fill="none", pad_border=False, input_height=64,
               input_width=64)  # an input size unlike the camera's 96 x 320
    cpu = torch.device("cpu")
    sgbm = estimator_for_model(create_model("sgbm_teacher", **raw), cpu)
    ref = sgbm.predict(frame["left"], frame["right"], K, baseline)
    other = create_model("test_classical_matcher", **raw)
    loaded = StereoDepthEstimator.from_checkpoint(save_model(tmp_path / "m.pt", other), "cpu")
    for est in (estimator_for_model(other, cpu), loaded):
        pred = est.predict(frame["left"], frame["right"], K, baseline)
        assert est.work_size is None and pred.scale == 1.0
        np.testing.assert_array_equal(pred.depth, ref.depth)
        with pytest.raises(ConfigError, match="needs K and a positive baseline"):
            est.predict(frame["left"], frame["right"], None, baseline)


def test_network_stereo_teacher_from_checkpoint(tmp_path, stereo_frame):
    frame, K, baseline = stereo_frame
    path = tiny_checkpoint(tmp_path / "t.pt", "stereo_concat_teacher")
    est = StereoDepthEstimator.from_spec(str(path), device="cpu")
    pred = est.predict(frame["left"], frame["right"], K, baseline)
    assert pred.depth.shape == (96, 320) and np.isfinite(pred.depth).all()
    # K's fx at the 192 px network input is 185.6 * 192 / 320 = 111.36 px vs 100 px trained
    assert pred.scale == pytest.approx(185.6 * NET_W / 320 / TRAIN_FOCAL_PX, rel=1e-6)
    with pytest.raises(ImageError, match="differ in size"):
        est.predict(frame["left"], frame["right"][:, :-2], K, baseline)


def colorize_depth(depth, lo, hi, colormap="turbo"):
    return visualize.colorize_depth(depth, lo, hi, colormap, channels="bgr")


def test_colorize_depth_fixed_range_bgr():
    depth = np.array([[0.5, 1.0, 100.0, np.nan]], np.float32)
    bgr = colorize_depth(depth, 1.0, 50.0, "turbo")
    rgb = visualize.colorize_depth(depth, 1.0, 50.0, "turbo")  # the one implementation
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    assert bgr.shape == (1, 4, 3) and bgr.dtype == np.uint8
    assert (bgr[0, 3] == 0).all()  # invalid -> black
    np.testing.assert_array_equal(bgr[0, 0], bgr[0, 1])  # nearer than the range clips
    assert not np.array_equal(bgr[0, 1], bgr[0, 2])
    turbo_far = colorize_depth(np.array([[50.0]], np.float32), 1.0, 50.0)[0, 0]
    assert turbo_far[0] > turbo_far[2]  # turbo's far end is blue: B > R in BGR
    with pytest.raises(ConfigError, match="colormap"):
        colorize_depth(depth, 1.0, 50.0, "sepia")
