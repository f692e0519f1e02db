"""The node cores under what real cameras send.

An uncalibrated camera_info (K all zero) is not republished as intrinsics, an unstamped frame is
processed but kept out of the stamp age, stereo topics are paired by stamp, SGBM's "no depth" and
range-limit pixels are NaN and unscored, the CPU thread count is set, and a long run of mixed good
and bad frames leaves the memory flat and the log short (a broken 30 Hz camera must not cost ~1 GB
a day).
"""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pytest
import torch

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.errors import ConfigError
from depth_kd_core.inference import DepthEstimator, DepthPrediction, StereoDepthEstimator
from depth_kd_core.metrics import depth_metrics
from depth_kd_core.runtime import auto_threads, set_cpu_threads
from depth_kd_ros.frame_stats import LOG_REPEAT_S
from depth_kd_ros.mono_depth_core import DEPTH, DEPTH_INFO, MonoDepthCore
from depth_kd_ros.params import MONO_PARAMS, load_node_parameters
from depth_kd_ros.stamp_sync import StampSync
from depth_kd_ros.stereo_compare_core import (
    ABS_ERROR,
    METRICS,
    STUDENT,
    TEACHER,
    StereoCompareCore,
)

from bag_helpers import TS, camera_info, image
from inference_helpers import TRAIN_FOCAL_PX, tiny_model, torch_single_thread  # noqa: F401
from node_helpers import FakeClock, StubLogger

pytestmark = pytest.mark.usefixtures("torch_single_thread")
LOG = logging.getLogger("robustness_test")
H, W = 32, 64  # soak frames: the smallest size the tiny networks take
STAMP = 1_700_000_000 * 10**9
PARAMS = {"checkpoint": "unused.pt", "device": "cpu"}


@pytest.fixture(scope="module")
def small_estimator():
    return DepthEstimator(tiny_model(input_height=H, input_width=W, focal_px=TRAIN_FOCAL_PX),
                          torch.device("cpu"))


def _frame(stamp: int, rgb: np.ndarray | None = None, **override) -> object:
    rgb = np.full((H, W, 3), 90, np.uint8) if rgb is None else rgb
    return image(stamp, **{**mc.image_fields(rgb, "rgb8"), **override})


def test_uncalibrated_camera_info_is_ignored_and_outputs_describe_the_training_camera(
        small_estimator):
    log = StubLogger(keep_lines=False)
    core = MonoDepthCore(small_estimator, PARAMS, TS.types, log)
    zero_k = camera_info(STAMP, H, W, fx=0.0)  # real size, K = P = 0 (CameraInfo.msg)
    for _ in range(3):
        core.on_camera_info(zero_k)
    assert core.calib is None and log.count["warning"] == 1 and "uncalibrated" in log.last
    out = core.on_image(_frame(STAMP), [DEPTH, DEPTH_INFO])
    k = np.asarray(out[DEPTH_INFO].k).reshape(3, 3)
    assert k[0, 0] == pytest.approx(TRAIN_FOCAL_PX)  # training camera at 64 px wide, not 0
    assert k[0, 2] == pytest.approx((W - 1) / 2)
    core.on_camera_info(camera_info(STAMP, H, W, fx=50.0))
    out = core.on_image(_frame(STAMP), [DEPTH_INFO])
    assert np.asarray(out[DEPTH_INFO].k)[0] == pytest.approx(50.0)


def test_zero_stamp_is_published_with_a_warning_and_kept_out_of_the_stamp_age(small_estimator):
    log, clock = StubLogger(keep_lines=False), FakeClock()
    core = MonoDepthCore(small_estimator, {**PARAMS, "focal_scaling": False}, TS.types, log,
                         clock=clock)
    now = STAMP + 40_000_000
    for k in range(10):
        clock.t = k * 0.1
        out = core.on_image(_frame(0), [DEPTH], now_ns=now)
        assert out[DEPTH].header.stamp.sec == 0
    assert log.count["warning"] == 1 and "stamp 0" in log.last
    assert core.diagnostics().values["stamp_age_ms_mean"] == "nan"  # not 6e10
    core.on_image(_frame(STAMP), [DEPTH], now_ns=now)
    assert float(core.diagnostics().values["stamp_age_ms_mean"]) == pytest.approx(40.0)


def test_stamp_sync_pairs_within_the_slop_in_order_and_stays_bounded():
    sync = StampSync(2, queue_size=3, slop_ns=10)
    assert sync.add(0, 100, "L100") is None
    assert sync.add(1, 150, "R150") is None  # 50 ns apart: beyond the slop
    assert sync.add(1, 105, "R105") == ["L100", "R105"]
    assert len(sync) == 1  # R150 waits; L100, R105 and everything older are gone
    assert sync.add(0, 155, "L155") == ["L155", "R150"]
    for k in range(100):  # one topic only: the queue keeps its 3 newest
        sync.add(0, 1000 + k, k)
    assert len(sync) == 3 and sorted(sync.queues[0]) == [1097, 1098, 1099]
    with pytest.raises(ValueError, match="queue_size"):
        StampSync(2, 0, 10)


def _stereo_core(small_estimator, log, **params) -> StereoCompareCore:
    teacher = StereoDepthEstimator.sgbm(num_disparities=16, block_size=5)
    return StereoCompareCore(small_estimator, teacher, {"student_checkpoint": "unused.pt",
                                                        "device": "cpu", **params},
                             TS.types, log)


def _stereo_messages(stamp: int, rgb: np.ndarray | None = None, **override):
    left = _frame(stamp, rgb, **override)
    right = _frame(stamp, rgb)
    return [left, right, camera_info(stamp, H, W, fx=50.0),
            camera_info(stamp, H, W, fx=50.0, tx=-50.0 * 0.5)]


def test_teacher_without_depth_or_at_its_range_limit_is_nan_and_not_scored(small_estimator,
                                                                            monkeypatch):
    core = _stereo_core(small_estimator, StubLogger(keep_lines=False), metrics_max_depth=1000.0)
    max_depth = core.teacher.cfg.max_depth
    teacher = np.full((H, W), 10.0, np.float32)
    teacher[:, :8] = 0.0  # SGBM: no match / beyond range
    teacher[:, 8:16] = max_depth  # an old SGBM clamped far pixels here
    pred = DepthPrediction(teacher, np.full_like(teacher, np.nan), False,
                           {"inference": 1.0}, 1.0, "")
    monkeypatch.setattr(core.teacher, "predict", lambda *a, **k: pred)
    out = {}
    for index, msg in enumerate(_stereo_messages(STAMP)):
        out = core.on_message(index, msg, [TEACHER, ABS_ERROR, METRICS])
    published = mc.image_to_array(out[TEACHER])
    assert np.isnan(published[:, :16]).all() and (published[:, 16:] == 10.0).all()
    error = mc.image_to_array(out[ABS_ERROR])
    assert np.isnan(error[:, :16]).all() and np.isfinite(error[:, 16:]).all()
    student = core.student.predict(_frame_rgb(), core._camera(*_stereo_messages(STAMP)[2:],
                                                             (H, W))[0]).depth
    expected = depth_metrics(student[:, 16:], teacher[:, 16:], max_depth=1000.0)
    abs_rel, rmse = np.asarray(out[METRICS].data)[:2]
    assert abs_rel == pytest.approx(expected["abs_rel"], rel=1e-4)
    assert rmse == pytest.approx(expected["rmse"], rel=1e-4)


def _frame_rgb() -> np.ndarray:
    return np.full((H, W, 3), 90, np.uint8)


def test_threads_are_set_for_torch_and_refused_when_negative(small_estimator):
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_cpu_threads(0) == auto_threads() >= 1
        est = DepthEstimator(tiny_model(input_height=H, input_width=W), torch.device("cpu"),
                             threads=1)
        assert est.threads == 1 == torch.get_num_threads()
        with pytest.raises(ConfigError, match="threads must be an integer >= 0"):
            set_cpu_threads(-1)
    finally:
        torch.set_num_threads(before)


def test_parameter_files_may_hold_the_standard_ros_parameters(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("mono_depth:\n  ros__parameters:\n    threads: 1\n"
                    "    start_type_description_service: false\n"
                    "    diagnostic_updater:\n      use_fqn: true\n      period: 2.0\n"
                    "    qos_overrides:\n      /parameter_events:\n        publisher:\n"
                    "          depth: 100\n")
    params = load_node_parameters(path, MONO_PARAMS)
    assert params == {"threads": 1, "start_type_description_service": False,
                      "diagnostic_updater.use_fqn": True, "diagnostic_updater.period": 2.0,
                      "qos_overrides./parameter_events.publisher.depth": 100}


def _bad_frames(stamp: int) -> list:
    """Five kinds of malformed frames, each stamped ``stamp``."""
    good = mc.image_fields(_frame_rgb(), "rgb8")
    broken_header = _frame(stamp)
    broken_header.header = None
    return [image(stamp, **{**good, "step": 3}),
            image(stamp, **{**good, "encoding": "weird8"}),
            image(stamp, **{**good, "data": good["data"][:100]}),
            image(stamp, **{**good, "height": 0, "data": good["data"][:0]}),
            broken_header]


def _soak(feed, n_frames: int, clock: FakeClock, fps: float = 30.0) -> int:
    """Feed ``n_frames`` frames at ``fps`` (fake clock); traced bytes grown after warm-up."""
    warm = n_frames // 10
    for k in range(warm):
        clock.t = k / fps
        feed(k)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(warm, n_frames):
            clock.t = k / fps
            feed(k)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_mono_core_soak_10000_mixed_frames_flat_memory_and_bounded_log(small_estimator):
    log, clock = StubLogger(keep_lines=False), FakeClock()
    core = MonoDepthCore(small_estimator, PARAMS, TS.types, log, clock=clock)

    def feed(k: int) -> None:
        stamp = STAMP + k * 33_333_333
        msg = _frame(stamp) if k % 50 == 0 else _bad_frames(stamp)[k % 5]
        out = core.on_image(msg, [DEPTH], now_ns=stamp + 10_000_000)
        assert (DEPTH in out) == (k % 50 == 0)

    n = 11_000
    grown = _soak(feed, n, clock)
    assert grown <= 2 * 2**20, f"memory grew {grown / 2**20:.2f} MB over {n} frames"
    assert core.stats.processed == n // 50 and core.stats.dropped == n - n // 50
    seconds = n / 30.0
    kinds = 5
    lines = log.count["warning"] + log.count["error"]
    assert lines <= kinds * (seconds / LOG_REPEAT_S + 2), lines  # was one per bad frame
    assert lines >= kinds  # every kind was reported


@pytest.mark.slow
def test_stereo_core_soak_10000_messages_flat_memory_and_bounded_log(small_estimator):
    log, clock = StubLogger(keep_lines=False), FakeClock()
    core = _stereo_core(small_estimator, log)

    def feed(k: int) -> None:
        stamp = STAMP + (k // 4) * 33_333_333
        pair = k // 4
        if pair % 50 == 0:
            msgs = _stereo_messages(stamp)
        else:
            msgs = _stereo_messages(stamp, **{"encoding": "weird8"} if pair % 2 else
                                    {"step": 3})
        core.on_message(k % 4, msgs[k % 4], [STUDENT, METRICS], now_ns=stamp)

    n = 10_000
    grown = _soak(feed, n, clock, fps=120.0)  # 4 messages per 30 Hz pair
    assert grown <= 2 * 2**20, f"memory grew {grown / 2**20:.2f} MB over {n} messages"
    assert core.stats.processed == n // 4 // 50 and core.stats.dropped == n // 4 - n // 200
    lines = log.count["warning"] + log.count["error"]
    assert 2 <= lines <= 2 * (n / 120.0 / LOG_REPEAT_S + 2), lines
