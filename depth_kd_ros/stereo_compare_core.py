"""Everything ``stereo_compare_node`` decides, without rclpy.

A synchronised rectified stereo pair (left/right image + camera_info) -> student (monocular,
left image) and stereo teacher (network checkpoint or SGBM) -> depth images, an error image and
rolling metrics.

Scheduling: the teacher runs on the first pair and then whenever the left header stamp is at
least ``1 / teacher_rate_hz`` after its last run (stamps, not wall time, so a bag replayed at
any speed gives the same schedule; a stamp jumping backwards restarts it). The student runs
on every pair while someone subscribes to ``student/depth`` (camera rate) and always on
teacher pairs, whose comparison feeds the diagnostics.

Outputs (relative names; the node publishes each on that topic):

``student/depth``  32FC1 metres, NaN invalid, header of the left image.
``teacher/depth``  32FC1 metres, NaN invalid, same header (teacher pairs only).
``abs_error``      32FC1 |student - teacher| in metres, NaN where either is invalid.
``metrics``        std_msgs/Float32MultiArray, ``data = [abs_rel, rmse, delta1, frames]``
                   (labels in ``layout.dim[0].label``): Eigen AbsRel, RMSE (m) and
                   delta < 1.25 of the student against the teacher, averaged over the last
                   ``metrics_window`` teacher pairs (``depth_kd_core.metrics``), and how many
                   pairs that window holds; NaN before the first scored pair.

K comes from the left CameraInfo's P (rectified intrinsics), the baseline from the right
CameraInfo (``P[0, 3] = -fx * B``, REP 104). A malformed pair is logged and dropped.

Teacher pixels without a depth (SGBM: no match, or a disparity below the one of its
``max_depth``; networks: depth <= 0) are NaN on ``teacher/depth`` and ``abs_error`` and are
not scored: a far pixel is never published as a made-up ``max_depth``.

Pairing: :meth:`StereoCompareCore.on_message` takes the four topics one message at a time and
pairs them by header stamp (:class:`~depth_kd_ros.stamp_sync.StampSync`, approximate time with
``sync_queue_size`` and ``sync_slop_s``), the same with or without a ROS 2 install.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from depth_kd_core.data.bags.codec import stamp_ns
from depth_kd_core.data.bags.messages import Types, copy_header, depth_msg, float_array_msg
from depth_kd_core.data.camera import CameraCalibration, check_calibrated, stereo_baseline
from depth_kd_core.errors import DepthKDError
from depth_kd_core.inference import DepthEstimator, StereoDepthEstimator
from depth_kd_core.metrics import MetricAccumulator
from depth_kd_ros.conversions import bridged_msg_to_rgb8
from depth_kd_ros.frame_stats import (
    DiagnosticSummary,
    FrameStats,
    Logger,
    ThrottledLog,
    fault_kind,
    stamp_age_ms,
)
from depth_kd_ros.params import STEREO_PARAMS, validate_changes, validate_params
from depth_kd_ros.stamp_sync import StampSync

STUDENT, TEACHER, ABS_ERROR, METRICS = "student/depth", "teacher/depth", "abs_error", "metrics"
OUTPUTS = (STUDENT, TEACHER, ABS_ERROR, METRICS)
METRIC_KEYS = ("abs_rel", "rmse", "a1")  # depth_kd_core.metrics names; a1 is delta < 1.25
METRICS_LABELS = "abs_rel,rmse,delta1,frames"


def abs_error(student: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """|student - teacher| (metres), NaN where either is NaN (invalid or beyond range)."""
    return np.abs(student - teacher).astype(np.float32)


def teacher_depth_nan(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """Return teacher depth (H, W) metres with NaN where invalid.

    Invalid: <= 0, non-finite, or at/above the teacher's own ``max_depth`` (> 0) — a value
    clamped there is a range limit, not a depth (REP 117 forbids publishing it as one).
    """
    bad = ~(depth > 0)
    if max_depth > 0:
        bad |= depth >= max_depth
    return np.where(bad, np.float32(np.nan), depth).astype(np.float32, copy=False)


class StereoCompareCore:
    """Callback logic of the stereo comparison node (see module docstring).

    Args:
        student: monocular estimator; teacher: stereo estimator.
        params: validated with :data:`~depth_kd_ros.params.STEREO_PARAMS`.
        types: message classes; log: info/warning/error logger; topic: left image topic.
        clock: monotonic seconds (tests inject one).
    """

    def __init__(self, student: DepthEstimator, teacher: StereoDepthEstimator,
                 params: dict[str, Any], types: Types, log: Logger, topic: str = "left",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.student, self.teacher, self.types, self.topic = student, teacher, types, topic
        self.params = validate_params(STEREO_PARAMS, params)
        self.log = ThrottledLog(log, clock)
        self.stats = FrameStats(self.params["diagnostics_window"], clock)
        self.teacher_stats = FrameStats(self.params["diagnostics_window"], clock)
        self.metrics = MetricAccumulator(window=self.params["metrics_window"],
                                         min_depth=self.params["metrics_min_depth"],
                                         max_depth=self.params["metrics_max_depth"])
        self.last_teacher_ns: int | None = None
        self.clock = clock
        self.sync = StampSync(4, self.params["sync_queue_size"],
                              round(self.params["sync_slop_s"] * 1e9))

    @classmethod
    def from_params(cls, params: dict[str, Any], types: Types, log: Logger,
                    topic: str = "left") -> StereoCompareCore:
        """Validate the parameters and load the student and the teacher they name."""
        p = validate_params(STEREO_PARAMS, params)
        if not p["student_checkpoint"]:
            raise DepthKDError("parameter 'student_checkpoint' is empty: set it to a depth_kd "
                               ".pt file")
        device = p["device"] or None
        student = DepthEstimator.from_checkpoint(p["student_checkpoint"], device, p["fp16"],
                                                 p["focal_scaling"], threads=p["threads"])
        teacher = StereoDepthEstimator.from_spec(p["teacher"], device, threads=p["threads"],
                                                 num_disparities=p["sgbm_num_disparities"],
                                                 block_size=p["sgbm_block_size"])
        log.info(f"student {student.name} on {student.device}; teacher {teacher.name} on "
                 f"{teacher.device} at {p['teacher_rate_hz']:g} Hz; {teacher.threads} CPU "
                 f"thread(s)")
        return cls(student, teacher, p, types, log, topic)

    def set_params(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (ConfigError, nothing applied, if any is bad)."""
        self.params = validate_changes(STEREO_PARAMS, self.params, changes)
        self.student.focal_scaling = self.params["focal_scaling"]
        self.metrics.metric_kwargs.update(min_depth=self.params["metrics_min_depth"],
                                          max_depth=self.params["metrics_max_depth"])

    @property
    def teacher_max_depth(self) -> float:
        """SGBM's range limit in metres (its depth is unscaled camera depth); 0 for networks.

        A network's output is rescaled to the camera and has no fixed ceiling.
        """
        if not getattr(self.teacher, "classical", False):
            return 0.0
        return float(getattr(self.teacher.cfg, "max_depth", 0.0) or 0.0)

    def teacher_due(self, stamp: int) -> bool:
        """Whether the teacher runs on the pair stamped ``stamp`` (ns)."""
        last = self.last_teacher_ns
        period = 1e9 / self.params["teacher_rate_hz"]
        return last is None or stamp < last or stamp - last >= period

    def on_message(self, index: int, msg: Any, wanted: Collection[str] = OUTPUTS,
                   now_ns: int | None = None) -> dict[str, Any]:
        """Take one message of topic ``index``; return the outputs of the pair it completes.

        Topics: 0 left image, 1 right image, 2 left camera_info, 3 right camera_info; the
        outputs are those of :meth:`on_pair`.
        """
        try:
            matched = self.sync.add(index, stamp_ns(msg), msg)
        except Exception as exc:  # noqa: BLE001 - an unreadable header must not kill the node
            self._drop(msg, exc)
            return {}
        return self.on_pair(*matched, wanted, now_ns) if matched is not None else {}

    def on_pair(self, left: Any, right: Any, left_info: Any, right_info: Any,
                wanted: Collection[str] = OUTPUTS, now_ns: int | None = None
                ) -> dict[str, Any]:
        """Process one synchronised set; returns {output name: message} for ``wanted``."""
        t0 = self.clock()
        try:
            stamp = stamp_ns(left)
            teacher_turn = self.teacher_due(stamp)
            if not teacher_turn and STUDENT not in wanted:
                self.stats.skip()
                return {}
            out, infer_ms = self._process(left, right, left_info, right_info, set(wanted),
                                          teacher_turn, stamp)
        except Exception as exc:  # noqa: BLE001 - a bad pair must never kill the node
            self._drop(left, exc)
            return {}
        age = stamp_age_ms(stamp, now_ns, self.log, f"pair on '{self.topic}'")
        self.stats.record((self.clock() - t0) * 1e3, infer_ms, age)
        return out

    def _drop(self, msg: Any, exc: Exception) -> None:
        try:
            where = f"pair {stamp_ns(msg)} ns"
        except Exception:  # noqa: BLE001 - the header itself may be the broken part
            where = "pair with unreadable header"
        kind = "" if isinstance(exc, DepthKDError) else f"internal error {type(exc).__name__}: "
        self.stats.drop(str(exc))
        self.log("warning" if not kind else "error",
                 f"dropped {where} on '{self.topic}': {kind}{exc}",
                 key=f"drop {type(exc).__name__}: {fault_kind(str(exc))}")

    def _camera(self, left_info: Any, right_info: Any, size: tuple[int, int]
                ) -> tuple[np.ndarray, float]:
        """Rectified K of the left image at ``size`` and the baseline in metres."""
        h, w = size
        calib_l = check_calibrated(CameraCalibration.from_msg(left_info, "left camera_info"),
                                   "left camera_info")
        calib_r = CameraCalibration.from_msg(right_info, "right camera_info")
        baseline = stereo_baseline(calib_l, calib_r, "stereo camera_info")
        return calib_l.scaled_to(h, w, "left camera_info").rectified_K(), baseline

    def _process(self, left: Any, right: Any, left_info: Any, right_info: Any,
                 wanted: set[str], teacher_turn: bool, stamp: int
                 ) -> tuple[dict[str, Any], float]:
        left_rgb = bridged_msg_to_rgb8(left, self.topic)
        K, baseline = self._camera(left_info, right_info, left_rgb.shape[:2])
        header = copy_header(self.types, left.header)
        student = self.student.predict(left_rgb, K)
        out: dict[str, Any] = {}
        if STUDENT in wanted:
            out[STUDENT] = depth_msg(self.types, header, student.depth)
        if not teacher_turn:
            return out, student.timings_ms["inference"]
        right_rgb = bridged_msg_to_rgb8(right, f"{self.topic} (right)")
        t0 = self.clock()
        teacher = self.teacher.predict(left_rgb, right_rgb, K, baseline)
        self.teacher_stats.record((self.clock() - t0) * 1e3, teacher.timings_ms["inference"])
        self.last_teacher_ns = stamp
        teacher_depth = teacher_depth_nan(teacher.depth, self.teacher_max_depth)
        self._score(student.depth, teacher_depth)
        if TEACHER in wanted:
            out[TEACHER] = depth_msg(self.types, header, teacher_depth)
        if ABS_ERROR in wanted:
            out[ABS_ERROR] = depth_msg(self.types, header,
                                       abs_error(student.depth, teacher_depth))
        if METRICS in wanted:
            out[METRICS] = float_array_msg(self.types, METRICS_LABELS, self.rolling())
        return out, student.timings_ms["inference"] + teacher.timings_ms["inference"]

    def _score(self, student: np.ndarray, teacher: np.ndarray) -> None:
        """Add one pair to the rolling metrics.

        Pixels where either side is invalid are excluded (ground truth 0 there, the metrics'
        invalid value).
        """
        both = np.isfinite(student) & np.isfinite(teacher)
        gt = np.where(both, teacher, 0.0)
        pred = np.where(both, student, 1.0)
        if self.metrics.update(pred, gt) is None:
            self.log("warning", "teacher pair without valid pixels in the metric range: not "
                                "scored")

    def rolling(self) -> list[float]:
        """[abs_rel, rmse, delta1, frames] over the window (NaN before the first pair)."""
        if len(self.metrics) == 0:
            return [float("nan")] * len(METRIC_KEYS) + [0.0]
        m = self.metrics.compute()
        return [m[k] for k in METRIC_KEYS] + [float(len(self.metrics))]

    def diagnostics(self) -> DiagnosticSummary:
        """Status: student rate/latency, teacher rate/latency, rolling metrics, drops."""
        summary = self.stats.summary("stereo compare")
        teacher = self.teacher_stats
        abs_rel, rmse, delta1, frames = self.rolling()
        summary.values.update(
            student=self.student.name, teacher=self.teacher.name,
            teacher_rate_hz=f"{teacher.rate_hz():.2f}",
            teacher_latency_ms_mean=teacher.summary("teacher").values["latency_ms_mean"],
            abs_rel=f"{abs_rel:.4f}", rmse_m=f"{rmse:.3f}", delta1=f"{delta1:.4f}",
            metrics_frames=str(int(frames)))
        if frames:
            summary.message += f"; AbsRel {abs_rel:.3f}, RMSE {rmse:.2f} m, d1 {delta1:.3f}"
        return summary
