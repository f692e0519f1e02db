"""Everything ``mono_depth_node`` decides, without rclpy.

Image (raw or compressed) -> :class:`~depth_kd_core.inference.DepthEstimator` -> outgoing
messages.

Outputs: ``depth``, ``depth/camera_info``, ``uncertainty``, ``depth/colorized``, built by
:func:`depth_kd_core.depth_outputs.frame_outputs` (the same builder as ``bag_infer``; its
module docstring describes each). Without a camera_info (``use_camera_info: false``, or none
received yet) ``depth/camera_info`` describes the training camera, logged once.

A malformed frame (any ``DepthKDError`` — wrong step, unknown encoding, truncated data, zero
size …) is logged (throttled) and dropped; an unexpected exception is logged as an error and
the frame dropped too: the callback never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from depth_kd_core.data.bags.codec import stamp_ns
from depth_kd_core.data.bags.messages import Types
from depth_kd_core.data.camera import CameraCalibration, check_calibrated
from depth_kd_core.depth_outputs import (  # noqa: F401 - node API
    COLORIZED,
    DEPTH,
    DEPTH_INFO,
    OUTPUTS,
    UNCERTAINTY,
    OutputOptions,
    frame_outputs,
)
from depth_kd_core.errors import DepthKDError
from depth_kd_core.inference import DepthEstimator, DepthPrediction
from depth_kd_ros.conversions import bridged_msg_to_rgb8
from depth_kd_ros.frame_stats import (
    DiagnosticSummary,
    FrameStats,
    Logger,
    ThrottledLog,
    fault_kind,
    stamp_age_ms,
)
from depth_kd_ros.params import MONO_PARAMS, validate_changes, validate_params


class MonoDepthCore:
    """Callback logic of the monocular depth node.

    Args:
        estimator: the loaded network.
        params: node parameters (validated with :data:`~depth_kd_ros.params.MONO_PARAMS`).
        types: message classes (``conversions.ros2_message_types()`` or a rosbags typestore's
            ``types``).
        log: logger with info/warning/error.
        topic: name of the image topic, used in log lines and errors.
        clock: monotonic seconds (tests inject one).
    """

    def __init__(self, estimator: DepthEstimator, params: dict[str, Any], types: Types,
                 log: Logger, topic: str = "image",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.estimator, self.types, self.topic = estimator, types, topic
        self.params = validate_params(MONO_PARAMS, params)
        self.log = ThrottledLog(log, clock)
        self.stats = FrameStats(self.params["diagnostics_window"], clock)
        self.calib: CameraCalibration | None = None
        self.clock = clock

    @classmethod
    def from_params(cls, params: dict[str, Any], types: Types, log: Logger,
                    topic: str = "image") -> MonoDepthCore:
        """Validate the parameters and load the checkpoint they name."""
        p = validate_params(MONO_PARAMS, params)
        if not p["checkpoint"]:
            raise DepthKDError("parameter 'checkpoint' is empty: set it to a depth_kd .pt, "
                               ".onnx or .ts file")
        est = DepthEstimator.from_checkpoint(p["checkpoint"], p["device"] or None, p["fp16"],
                                             p["focal_scaling"], threads=p["threads"])
        log.info(f"loaded {est.name} ({est.cfg.output_kind}) from {p['checkpoint']} on "
                 f"{est.device}{' fp16' if est.fp16 else ''}, {est.threads} CPU thread(s)")
        return cls(est, p, types, log, topic)

    def set_params(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (ConfigError, nothing applied, if any is bad)."""
        self.params = validate_changes(MONO_PARAMS, self.params, changes)
        self.estimator.focal_scaling = self.params["focal_scaling"]

    def on_camera_info(self, msg: Any) -> None:
        """Keep the latest calibration.

        A malformed or uncalibrated one (zero size, K = 0) is logged and ignored, so outputs
        fall back to the training camera.
        """
        try:
            self.calib = check_calibrated(CameraCalibration.from_msg(msg, "camera_info"),
                                          "camera_info")
        except DepthKDError as exc:
            self.calib = None
            self.log("warning", f"ignoring camera_info: {exc}", key="camera_info")

    def on_image(self, msg: Any, wanted: Collection[str] = OUTPUTS,
                 now_ns: int | None = None) -> dict[str, Any]:
        """Process one image; returns {output name: message} for the ``wanted`` outputs.

        Empty when nobody subscribes (inference skipped) or the frame was dropped.
        ``now_ns``: current ROS time, for the stamp-to-publish age in diagnostics.
        """
        wanted = set(wanted) & set(OUTPUTS)
        if not wanted:
            self.stats.skip()
            return {}
        t0 = self.clock()
        try:
            stamp = stamp_ns(msg)
            out, pred = self._process(msg, wanted)
        except Exception as exc:  # noqa: BLE001 - a bad frame must never kill the node
            self._drop(msg, exc)
            return {}
        self.stats.record((self.clock() - t0) * 1e3, pred.timings_ms["inference"],
                          stamp_age_ms(stamp, now_ns, self.log,
                                       f"frame on '{self.topic}'"))
        return out

    def _drop(self, msg: Any, exc: Exception) -> None:
        try:
            where = f"frame {stamp_ns(msg)} ns"
        except Exception:  # noqa: BLE001 - the header itself may be the broken part
            where = "frame with unreadable header"
        kind = "" if isinstance(exc, DepthKDError) else f"internal error {type(exc).__name__}: "
        text = f"dropped {where} on '{self.topic}': {kind}{exc}"
        self.stats.drop(str(exc))
        self.log("warning" if not kind else "error", text,
                 key=f"drop {type(exc).__name__}: {fault_kind(str(exc))}")

    def _process(self, msg: Any, wanted: set[str]) -> tuple[dict[str, Any], DepthPrediction]:
        """Decode, then the builder ``bag_infer`` uses too; its notes are logged once."""
        rgb = bridged_msg_to_rgb8(msg, self.topic)
        calib = self.calib if self.params["use_camera_info"] else None
        p = self.params
        opts = OutputOptions(p["output_scale"], p["max_sigma"], p["focal_scaling"],
                             p["publish_colorized"], p["colormap"], p["colorize_min_depth"],
                             p["colorize_max_depth"])
        result = frame_outputs(self.estimator, self.types, msg.header, rgb, calib, opts,
                               wanted)
        for level, text in result.notes:
            self.log.once(level, text)
        return result.messages, result.prediction

    def diagnostics(self) -> DiagnosticSummary:
        """Status for diagnostic_updater: rate, latency, dropped frames, model, device."""
        summary = self.stats.summary("mono depth")
        summary.values.update(model=self.estimator.name, device=str(self.estimator.device),
                              camera_info="received" if self.calib is not None else "none")
        return summary
