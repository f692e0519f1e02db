"""The outgoing messages of one camera frame: one builder for the node and ``bag_infer``.

``mono_depth_node`` and ``bag_infer`` share it: same depth, same calibration rule, same NaN
rules, same message fields.

Outputs (names relative to the node or to ``bag_infer --out-namespace``):

``depth``              sensor_msgs/Image 32FC1, metres, NaN = invalid (REP 118); header (stamp,
                       optical frame) copied from the input image; optionally NaN where
                       sigma > ``max_sigma``.
``depth/camera_info``  sensor_msgs/CameraInfo with the same header; the input camera_info
                       scaled to the published size (``CameraCalibration.scaled_to``). Without
                       a camera_info it describes the *training* camera: fx = fy = the
                       checkpoint's ``focal_px`` scaled to the output, principal point at the
                       image centre, no distortion; nothing when the checkpoint records no
                       focal length.
``uncertainty``        32FC1 sigma in metres (NaN where depth is invalid); only for models
                       that predict sigma (ADU-Depth UEM, TIE-KD DPM).
``depth/colorized``    bgr8 rendering of depth over a fixed range (``publish_colorized``).

What a caller should log once (no focal scaling, no sigma, the training camera assumed …)
comes back as :attr:`FrameOutputs.notes`; the builder itself never logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection

import numpy as np

from depth_kd_core.data.bags import messages as mb
from depth_kd_core.data.camera import CameraCalibration
from depth_kd_core.inference import DepthEstimator, DepthPrediction
from depth_kd_core.visualize import colorize_depth

DEPTH, DEPTH_INFO, UNCERTAINTY, COLORIZED = ("depth", "depth/camera_info", "uncertainty",
                                             "depth/colorized")
OUTPUTS = (DEPTH, DEPTH_INFO, UNCERTAINTY, COLORIZED)


@dataclass(frozen=True)
class OutputOptions:
    """How a frame's outputs are rendered (the node's parameters of the same names).

    Attributes:
        output_scale: published size / input size, (0, 1].
        max_sigma: metres; depth is NaN where sigma is larger (0 = off).
        focal_scaling: whether the caller asked for focal scaling (silences its note).
        publish_colorized: build ``depth/colorized``.
        colormap, colorize_min_depth, colorize_max_depth: its rendering (metres).
    """

    output_scale: float = 1.0
    max_sigma: float = 0.0
    focal_scaling: bool = True
    publish_colorized: bool = True
    colormap: str = "turbo"
    colorize_min_depth: float = 1.0
    colorize_max_depth: float = 80.0


@dataclass
class FrameOutputs:
    """One frame's messages and what to log about them.

    Attributes:
        messages: {output name: message} for the wanted outputs.
        prediction: the estimator's result (depth before ``max_sigma`` masking).
        notes: (level, text) pairs a caller logs once each ("info" / "warning").
    """

    messages: dict[str, Any]
    prediction: DepthPrediction
    notes: list[tuple[str, str]] = field(default_factory=list)


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) of the published images for an input of ``height x width``."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def frame_outputs(estimator: DepthEstimator, types: mb.Types, header: Any, rgb: np.ndarray,
                  calib: CameraCalibration | None, opts: OutputOptions,
                  wanted: Collection[str] = OUTPUTS, source: str = "camera_info"
                  ) -> FrameOutputs:
    """Depth, sigma, colour and camera_info messages of one decoded frame.

    Args:
        estimator: the loaded network (``predict`` does all resizing and focal scaling).
        types: message classes (rclpy's or a rosbags typestore's ``types``).
        header: the input image's header (ROS 1 or ROS 2); stamp and frame are copied.
        rgb: (H, W, 3) uint8 RGB, the decoded image.
        calib: the camera's latest calibration at any size (scaled here), or None.
        opts: rendering options; wanted: output names to build.
        source: names the camera_info in the aspect-ratio note.
    """
    h, w = rgb.shape[:2]
    notes: list[tuple[str, str]] = []
    out_size = output_size(h, w, opts.output_scale)
    if calib is not None:
        mismatch = calib.aspect_mismatch(h, w, source)
        if mismatch:
            notes.append(("warning", mismatch))
        calib = calib.scaled_to(h, w, source)
    K = calib.rectified_K() if calib is not None else None
    need_sigma = UNCERTAINTY in wanted or opts.max_sigma > 0
    pred = estimator.predict(rgb, K, out_size, with_sigma=need_sigma)
    if pred.scale_note and opts.focal_scaling:
        notes.append(("warning", f"no focal scaling: {pred.scale_note}"))
    depth = _mask_sigma(estimator, pred, opts.max_sigma, notes)
    hdr = mb.copy_header(types, header)
    out: dict[str, Any] = {}
    if DEPTH in wanted:
        out[DEPTH] = mb.depth_msg(types, hdr, depth)
    if UNCERTAINTY in wanted:
        if pred.has_sigma:
            out[UNCERTAINTY] = mb.depth_msg(types, hdr, pred.sigma)
        else:
            notes.append(("info", f"{estimator.name} predicts no sigma: 'uncertainty' is not "
                                  f"published"))
    if COLORIZED in wanted and opts.publish_colorized:
        bgr = colorize_depth(depth, opts.colorize_min_depth, opts.colorize_max_depth,
                             opts.colormap, channels="bgr")
        out[COLORIZED] = mb.bgr8_msg(types, hdr, bgr)
    if DEPTH_INFO in wanted:
        info = _output_calibration(estimator, calib, out_size, notes)
        if info is not None:
            out[DEPTH_INFO] = mb.camera_info_msg(types, hdr, info)
    return FrameOutputs(out, pred, notes)


def _mask_sigma(estimator: DepthEstimator, pred: DepthPrediction, max_sigma: float,
                notes: list[tuple[str, str]]) -> np.ndarray:
    """Depth with NaN where sigma > ``max_sigma`` (> 0); unmasked for models without sigma."""
    if max_sigma <= 0:
        return pred.depth
    if not pred.has_sigma:
        notes.append(("warning", f"max_sigma is set but {estimator.name} predicts no sigma; "
                                 f"depth is not masked"))
        return pred.depth
    with np.errstate(invalid="ignore"):
        return np.where(pred.sigma > max_sigma, np.float32(np.nan),
                        pred.depth).astype(np.float32)


def _output_calibration(estimator: DepthEstimator, calib: CameraCalibration | None,
                        size: tuple[int, int], notes: list[tuple[str, str]]
                        ) -> CameraCalibration | None:
    """Return the camera at the published size, or the training camera when there is none."""
    h, w = size
    if calib is not None:
        return calib.scaled_to(h, w)
    assumed = assumed_calibration(estimator, h, w)
    if assumed is None:
        notes.append(("warning", "no camera_info and the checkpoint records no focal length: "
                                 "depth/camera_info is not published"))
    else:
        notes.append(("warning", f"no camera_info: depth/camera_info describes the training "
                                 f"camera (fx = {estimator.focal_px:g} px at "
                                 f"{estimator.work_size[1]} px wide, centred principal point)"))
    return assumed


def assumed_calibration(estimator: DepthEstimator, height: int, width: int
                        ) -> CameraCalibration | None:
    """Return the training camera at ``height x width`` (for outputs without a camera_info).

    fx = fy = ``focal_px`` scaled from the network input width, principal point at the
    image centre, no distortion; None when the checkpoint records no focal length.
    """
    if estimator.focal_px <= 0:
        return None
    f = estimator.focal_px * width / estimator.work_size[1]
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0],
                  [0.0, 0.0, 1.0]])
    return CameraCalibration(int(width), int(height), "plumb_bob", np.zeros(5), K,
                             np.eye(3), np.hstack([K, np.zeros((3, 1))]))
