"""stereo_compare_node's callback logic through its ROS-free core.

The teacher runs at teacher_rate_hz by header stamp while the student follows the camera,
published depths keep the left header, the error image and rolling AbsRel/RMSE/delta1 match
the metrics module on the published arrays, and bad pairs are logged and dropped.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.metrics import depth_metrics
from depth_kd_ros.frame_stats import WARN
from depth_kd_ros.stereo_compare_core import (
    ABS_ERROR,
    METRICS,
    METRICS_LABELS,
    OUTPUTS,
    STUDENT,
    TEACHER,
    StereoCompareCore,
)

from bag_helpers import TS, header
from inference_helpers import tiny_checkpoint, torch_single_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("torch_single_thread")
LOG = logging.getLogger("stereo_core_test")
T0 = 1_700_000_000 * 10**9
PERIOD = 100_000_000  # a 10 Hz camera
SGBM = {"sgbm_num_disparities": 64, "sgbm_block_size": 5}


@pytest.fixture(scope="module")
def world_frame():
    world = SyntheticWorld(0, 96, 320)
    return world, world.sample(0)


@pytest.fixture(scope="module")
def student_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("s") / "student.pt")


def _core(student_ckpt, **params) -> StereoCompareCore:
    return StereoCompareCore.from_params({"student_checkpoint": str(student_ckpt),
                                          "device": "cpu", **SGBM, **params}, TS.types, LOG,
                                         topic="/stereo/left/image_rect")


def _info(world, stamp: int, tx: float) -> object:
    K = world.K
    P = np.hstack([K, [[tx], [0.0], [0.0]]])
    roi = TS.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                       width=0, do_rectify=False)
    return TS.types["sensor_msgs/msg/CameraInfo"](
        header=header(stamp), height=world.height, width=world.width,
        distortion_model="plumb_bob", d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1),
        p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def _pair(world_frame, stamp: int) -> tuple[object, object, object, object]:
    world, frame = world_frame
    Image = TS.types["sensor_msgs/msg/Image"]
    left = Image(header=header(stamp), **mc.image_fields(frame["left"], "rgb8"))
    left.header.frame_id = "left_optical"
    right = Image(header=header(stamp), **mc.image_fields(frame["right"], "rgb8"))
    return (left, right, _info(world, stamp, 0.0),
            _info(world, stamp, -world.K[0, 0] * world.baseline))


def test_teacher_at_its_rate_student_at_camera_rate(world_frame, student_ckpt):
    core = _core(student_ckpt, teacher_rate_hz=2.0)
    kinds = []
    for k in range(11):
        out = core.on_pair(*_pair(world_frame, T0 + k * PERIOD))
        kinds.append(set(out))
        dep = out[STUDENT]
        assert dep.encoding == "32FC1" and (dep.height, dep.width) == (96, 320)
        assert mc.stamp_ns(dep) == T0 + k * PERIOD and dep.header.frame_id == "left_optical"
    teacher_frames = [k for k, s in enumerate(kinds) if TEACHER in s]
    assert teacher_frames == [0, 5, 10]  # 0.5 s apart on a 10 Hz camera
    assert all(s == set(OUTPUTS) for k, s in enumerate(kinds) if k in teacher_frames)
    assert all(s == {STUDENT} for k, s in enumerate(kinds) if k not in teacher_frames)
    assert core.stats.processed == 11 and core.teacher_stats.processed == 3


def test_error_image_and_metrics_match_the_published_depths(world_frame, student_ckpt):
    core = _core(student_ckpt, metrics_window=2)
    per_frame = []
    for k in range(3):  # default 2 Hz: every pair 0.5 s apart is a teacher pair
        out = core.on_pair(*_pair(world_frame, T0 + k * 500_000_000))
        student = mc.image_to_array(out[STUDENT])
        teacher = mc.image_to_array(out[TEACHER])
        err = mc.image_to_array(out[ABS_ERROR])
        assert out[TEACHER].encoding == out[ABS_ERROR].encoding == "32FC1"
        stamps = {mc.stamp_ns(out[name]) for name in (STUDENT, TEACHER, ABS_ERROR)}
        assert stamps == {T0 + k * 500_000_000}
        # NaN exactly where SGBM gives no depth (holes, beyond range), never a made-up value
        world, frame = world_frame
        raw = core.teacher.predict(frame["left"], frame["right"], world.K, world.baseline)
        np.testing.assert_array_equal(np.isnan(teacher), ~(raw.depth > 0)
                                      | (raw.depth >= core.teacher.cfg.max_depth))
        both = np.isfinite(student) & np.isfinite(teacher)
        np.testing.assert_array_equal(np.isfinite(err), both)
        np.testing.assert_allclose(err[both], np.abs(student - teacher)[both], rtol=1e-6)
        per_frame.append(depth_metrics(np.where(both, student, 1.0), np.where(both, teacher, 0),
                                       min_depth=0.1, max_depth=80.0))
    msg = out[METRICS]
    assert msg.layout.dim[0].label == METRICS_LABELS and msg.layout.dim[0].size == 4
    expected = [np.mean([m[k] for m in per_frame[-2:]]) for k in ("abs_rel", "rmse", "a1")]
    np.testing.assert_allclose(msg.data[:3], expected, rtol=1e-5)
    assert msg.data[3] == 2  # the window holds the last two teacher pairs
    summary = core.diagnostics()
    assert float(summary.values["abs_rel"]) == pytest.approx(expected[0], rel=1e-3)
    assert summary.values["metrics_frames"] == "2" and "AbsRel" in summary.message


def test_teacher_depth_is_metric_from_the_camera_info(world_frame, student_ckpt):
    core = _core(student_ckpt)
    out = core.on_pair(*_pair(world_frame, T0))
    teacher = mc.image_to_array(out[TEACHER])
    gt = world_frame[1]["depth"]
    ok = np.isfinite(teacher) & (gt > 0)
    assert np.median(np.abs(teacher[ok] - gt[ok]) / gt[ok]) < 0.1


def test_student_skipped_between_teacher_pairs_without_subscribers(world_frame, student_ckpt,
                                                                    monkeypatch):
    core = _core(student_ckpt)
    assert set(core.on_pair(*_pair(world_frame, T0), wanted={METRICS})) == {METRICS}
    calls = []
    monkeypatch.setattr(core.student, "predict", lambda *a, **k: calls.append(1))
    assert core.on_pair(*_pair(world_frame, T0 + PERIOD), wanted={METRICS}) == {}
    assert calls == [] and core.stats.skipped == 1


def test_stamp_going_backwards_restarts_the_teacher_schedule(world_frame, student_ckpt):
    core = _core(student_ckpt)
    core.on_pair(*_pair(world_frame, T0 + 10 * PERIOD))
    assert core.teacher_due(T0) and not core.teacher_due(T0 + 11 * PERIOD)


def test_bad_pairs_are_logged_and_dropped_then_the_next_pair_processed(world_frame,
                                                                       student_ckpt, caplog):
    core = _core(student_ckpt)
    left, right, linfo, rinfo = _pair(world_frame, T0)
    no_baseline = _info(world_frame[0], T0, 0.0)
    truncated = _pair(world_frame, T0)[0]
    truncated.data = truncated.data[:100]
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert core.on_pair(left, right, linfo, no_baseline) == {}
        assert core.on_pair(truncated, right, linfo, rinfo) == {}
    assert "baseline" in caplog.text and "truncated" in caplog.text
    assert "/stereo/left/image_rect" in caplog.text and core.stats.dropped == 2
    assert core.diagnostics().level == WARN
    out = core.on_pair(left, right, linfo, rinfo)
    assert TEACHER in out and core.stats.processed == 1


def test_network_teacher_from_a_checkpoint(world_frame, student_ckpt, tmp_path):
    teacher = tiny_checkpoint(tmp_path / "teacher.pt", "stereo_concat_teacher")
    core = _core(student_ckpt, teacher=str(teacher))
    out = core.on_pair(*_pair(world_frame, T0))
    teacher_depth = mc.image_to_array(out[TEACHER])
    assert teacher_depth.shape == (96, 320) and np.isfinite(teacher_depth).all()
    assert core.diagnostics().values["teacher"] == "stereo_concat_teacher"
