"""mono_depth_node's callback logic through its ROS-free core, with real ROS 2 message classes.

The message classes come from rosbags. Checked: copied header, 32FC1 metres with the right
step, NaN for invalid pixels, camera_info with the same stamp and K scaled, sigma in metres,
sigma masking, bad frames logged and dropped while the next good frame is still processed,
diagnostics, parameters.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.errors import ConfigError
from depth_kd_core.inference import DepthEstimator
from depth_kd_ros.frame_stats import OK, WARN
from depth_kd_ros.mono_depth_core import (
    COLORIZED,
    DEPTH,
    DEPTH_INFO,
    OUTPUTS,
    UNCERTAINTY,
    MonoDepthCore,
)

from bag_helpers import TS, camera_info, header, image
from inference_helpers import (
    NET_H,
    NET_W,
    TRAIN_FOCAL_PX,
    tiny_checkpoint,
    tiny_model,
    torch_single_thread,  # noqa: F401 - module fixture
)
from node_helpers import FakeClock

pytestmark = pytest.mark.usefixtures("torch_single_thread")

H, W = 2 * NET_H, 2 * NET_W  # camera images twice the network input
STAMP = 1_700_000_123_456_789_012
RNG = np.random.default_rng(0)
LOG = logging.getLogger("mono_core_test")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("m") / "adu.pt")


@pytest.fixture()
def core(ckpt):
    return MonoDepthCore.from_params({"checkpoint": str(ckpt), "device": "cpu"}, TS.types, LOG,
                                     topic="/cam/image_raw")


def _rgb() -> np.ndarray:
    return RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _frame(rgb: np.ndarray, ns: int = STAMP, frame_id: str = "cam_optical_frame") -> object:
    msg = image(ns, **mc.image_fields(rgb, "rgb8"))
    msg.header.frame_id = frame_id
    return msg


def _info(fx: float = 4 * TRAIN_FOCAL_PX) -> object:
    return camera_info(STAMP - 5_000_000, H, W, fx=fx)


def _cdr(msg: object) -> object:
    """Return what a subscriber gets: the message serialised and parsed (fails if malformed)."""
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def test_depth_message_header_encoding_step_and_values(core):
    rgb = _rgb()
    core.on_camera_info(_info())
    out = core.on_image(_frame(rgb))
    assert set(out) == set(OUTPUTS)
    depth = _cdr(out[DEPTH])
    assert depth.encoding == "32FC1" and (depth.height, depth.width) == (H, W)
    assert depth.step == 4 * W and depth.is_bigendian == 0 and depth.data.size == 4 * W * H
    assert depth.header.frame_id == "cam_optical_frame"
    assert mc.stamp_ns(depth) == STAMP
    values = mc.image_to_array(depth)
    K = np.array(_info().k).reshape(3, 3)
    ref = core.estimator.predict(rgb, K)  # the same network called directly
    assert ref.scale == pytest.approx(2.0)  # fx 400 px at 384 px = 200 px at the 192 px input
    np.testing.assert_allclose(values, ref.depth, rtol=1e-6)
    cfg = core.estimator.cfg
    assert np.all((values >= 2 * cfg.min_depth) & (values <= 2 * cfg.max_depth))


def test_uncertainty_is_sigma_in_metres_and_follows_focal_scaling(core):
    rgb = _rgb()
    plain = _cdr(core.on_image(_frame(rgb))[UNCERTAINTY])  # no camera_info yet: scale 1
    core.on_camera_info(_info())
    scaled = _cdr(core.on_image(_frame(rgb))[UNCERTAINTY])
    assert scaled.encoding == "32FC1" and scaled.step == 4 * W
    s0, s1 = mc.image_to_array(plain), mc.image_to_array(scaled)
    assert np.isfinite(s0).all() and (s0 >= 0).all()
    np.testing.assert_allclose(s1, 2 * s0, rtol=1e-5)
    ref = core.estimator.predict(rgb)
    np.testing.assert_allclose(s0, ref.sigma, rtol=1e-6)


def test_camera_info_same_stamp_and_k_scaled_with_the_output(ckpt):
    core = MonoDepthCore.from_params({"checkpoint": str(ckpt), "device": "cpu",
                                      "output_scale": 0.5}, TS.types, LOG)
    info_in = _info()
    core.on_camera_info(info_in)
    out = core.on_image(_frame(_rgb()))
    info = _cdr(out[DEPTH_INFO])
    depth = out[DEPTH]
    assert (depth.height, depth.width) == (H // 2, W // 2) and depth.step == 4 * (W // 2)
    assert (info.height, info.width) == (H // 2, W // 2)
    assert mc.stamp_ns(info) == STAMP and info.header.frame_id == "cam_optical_frame"
    K_in, K = np.array(info_in.k).reshape(3, 3), np.array(info.k).reshape(3, 3)
    assert K[0, 0] == pytest.approx(K_in[0, 0] / 2) and K[1, 1] == pytest.approx(K_in[1, 1] / 2)
    assert K[0, 2] == pytest.approx((K_in[0, 2] + 0.5) / 2 - 0.5)
    P = np.array(info.p).reshape(3, 4)
    np.testing.assert_allclose(P[:, :3], K)
    assert info.distortion_model == "plumb_bob" and np.allclose(info.d, 0)


def test_without_camera_info_the_training_camera_is_published_once_logged(ckpt, caplog):
    core = MonoDepthCore.from_params({"checkpoint": str(ckpt), "device": "cpu",
                                      "use_camera_info": False}, TS.types, LOG)
    core.on_camera_info(_info())  # ignored: use_camera_info is false
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(2):
            info = core.on_image(_frame(_rgb()))[DEPTH_INFO]
    K = np.array(info.k).reshape(3, 3)
    assert K[0, 0] == pytest.approx(TRAIN_FOCAL_PX * W / NET_W)  # training focal, scaled
    assert K[0, 2] == pytest.approx((W - 1) / 2)
    assert caplog.text.count("describes the training camera") == 1


def test_no_camera_info_published_when_the_focal_is_unknown(tmp_path):
    core = MonoDepthCore.from_params({"checkpoint": str(tiny_checkpoint(
        tmp_path / "c.pt", focal_px=0.0)), "device": "cpu"}, TS.types, LOG)
    out = core.on_image(_frame(_rgb()))
    assert DEPTH in out and DEPTH_INFO not in out


def test_invalid_pixels_are_nan_and_black_when_colourised():
    model = tiny_model(focal_px=TRAIN_FOCAL_PX)

    def invalid_top_half(module, inputs, out):  # the core's "0 = invalid" contract
        out["depth"][..., : NET_H // 2, :] = 0.0
        return out

    model.register_forward_hook(invalid_top_half)
    core = MonoDepthCore(DepthEstimator(model, torch.device("cpu")), {}, TS.types, LOG)
    out = core.on_image(_frame(_rgb()))
    depth = mc.image_to_array(out[DEPTH])
    assert np.isnan(depth[: H // 2 - 1]).all() and np.isfinite(depth[H // 2 + 1:]).all()
    assert np.isnan(mc.image_to_array(out[UNCERTAINTY])[: H // 2 - 1]).all()
    bgr = mc.image_to_array(out[COLORIZED])
    assert out[COLORIZED].encoding == "bgr8" and bgr.shape == (H, W, 3)
    assert (bgr[: H // 2 - 1] == 0).all() and bgr[H // 2 + 1:].any()


def test_max_sigma_masks_exactly_the_uncertain_pixels(ckpt):
    rgb = _rgb()
    probe = MonoDepthCore.from_params({"checkpoint": str(ckpt), "device": "cpu"}, TS.types, LOG)
    sigma = mc.image_to_array(probe.on_image(_frame(rgb))[UNCERTAINTY])
    limit = float(np.median(sigma))
    probe.set_params({"max_sigma": limit})
    out = probe.on_image(_frame(rgb))
    depth = mc.image_to_array(out[DEPTH])
    np.testing.assert_array_equal(np.isnan(depth), sigma > limit)
    assert 0 < np.isnan(depth).mean() < 1


def _bad_frames() -> dict[str, tuple[object, str]]:
    good = mc.image_fields(RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8), "rgb8")
    Compressed = TS.types["sensor_msgs/msg/CompressedImage"]
    jpeg = mc.compressed_fields(RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8), "jpeg")
    return {
        "step too small": (image(1, **{**good, "step": 20}), "step"),
        "truncated data": (image(2, **{**good, "data": good["data"][:-7]}), "truncated"),
        "unknown encoding": (image(3, **{**good, "encoding": "rgb9"}), "encoding"),
        "zero size": (image(4, **{**good, "height": 0, "data": good["data"][:0]}), "height"),
        "depth encoding": (image(5, **mc.image_fields(np.ones((4, 4), np.float32), "32FC1")),
                           "encoding"),
        "odd bayer": (image(6, height=3, width=4, encoding="bayer_rggb8", is_bigendian=0,
                            step=4, data=np.zeros(12, np.uint8)), "height"),
        "corrupt jpeg": (Compressed(header=header(7), format="jpeg",
                                    data=jpeg["data"][: len(jpeg["data"]) // 2]), "truncated"),
        "empty png": (Compressed(header=header(8), format="png", data=np.zeros(0, np.uint8)),
                      "empty"),
    }


@pytest.mark.parametrize("case", list(_bad_frames()))
def test_bad_frame_is_logged_and_dropped_then_next_good_frame_processed(core, case, caplog):
    msg, field = _bad_frames()[case]
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert core.on_image(msg) == {}
    assert core.stats.dropped == 1 and field in caplog.text and "/cam/image_raw" in caplog.text
    out = core.on_image(_frame(_rgb()))
    assert out[DEPTH].encoding == "32FC1" and mc.stamp_ns(out[DEPTH]) == STAMP
    assert core.stats.processed == 1
    summary = core.diagnostics()
    assert summary.level == WARN and summary.values["frames_dropped"] == "1"


def test_unexpected_exception_is_logged_as_error_and_dropped(core, caplog, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(core.estimator, "predict", boom)
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert core.on_image(_frame(_rgb())) == {}
    assert "internal error RuntimeError: CUDA out of memory" in caplog.text


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "mono8", "mono16", "bayer_grbg8"])
def test_other_encodings_and_compressed_input(core, encoding):
    rgb = _rgb()
    arr = {"bgr8": rgb[..., ::-1], "rgba8": np.dstack([rgb, rgb[..., :1]]),
           "mono8": rgb[..., 0], "mono16": rgb[..., 0].astype(np.uint16) * 257,
           "bayer_grbg8": rgb[..., 1]}[encoding]
    out = core.on_image(image(STAMP, **mc.image_fields(np.ascontiguousarray(arr), encoding)))
    assert (out[DEPTH].height, out[DEPTH].width) == (H, W)
    Compressed = TS.types["sensor_msgs/msg/CompressedImage"]
    jpeg = Compressed(header=header(STAMP), **mc.compressed_fields(rgb, "jpeg"))
    out = core.on_image(jpeg)
    assert (out[DEPTH].height, out[DEPTH].width) == (H, W) and mc.stamp_ns(out[DEPTH]) == STAMP


def test_inference_skipped_without_subscribers(core, monkeypatch):
    calls = []
    monkeypatch.setattr(core.estimator, "predict", lambda *a, **k: calls.append(1))
    assert core.on_image(_frame(_rgb()), wanted=()) == {}
    assert calls == [] and core.stats.skipped == 1
    assert core.diagnostics().message.endswith("idle: no subscriber")


def test_only_wanted_outputs_are_built(core):
    out = core.on_image(_frame(_rgb()), wanted={DEPTH})
    assert set(out) == {DEPTH}


def test_bad_camera_info_is_ignored_with_a_warning(core, caplog):
    info = _info()
    info.width = 0
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        core.on_camera_info(info)
    assert core.calib is None and "uncalibrated" in caplog.text
    assert DEPTH in core.on_image(_frame(_rgb()))


def test_diagnostics_rate_latency_and_age(ckpt):
    clock = FakeClock(start=100.0)
    core = MonoDepthCore(DepthEstimator.from_checkpoint(ckpt, "cpu"), {}, TS.types, LOG,
                         clock=clock)
    assert core.diagnostics().level == WARN  # waiting for images
    for k in range(5):
        clock.t = 100.0 + 0.1 * k
        core.on_image(_frame(_rgb()), now_ns=STAMP + 50_000_000)
    summary = core.diagnostics()
    assert summary.level == OK and float(summary.values["rate_hz"]) == pytest.approx(10.0)
    assert float(summary.values["stamp_age_ms_mean"]) == pytest.approx(50.0)
    assert float(summary.values["inference_ms_mean"]) > 0
    assert summary.values["model"] == "adu_student" and summary.values["device"] == "cpu"


def test_read_only_parameters_cannot_change_at_run_time(core):
    with pytest.raises(ConfigError, match="read-only"):
        core.set_params({"device": "cuda"})
    core.set_params({"focal_scaling": False, "colormap": "jet"})
    assert core.estimator.focal_scaling is False and core.params["colormap"] == "jet"
