"""CameraInfo handling.

ROS 1 and ROS 2 spellings, rectification decisions, calibration scaled to downscaled images,
baseline from P, and rectification maps that invert a distortion.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.data.camera import (
    CameraCalibration,
    Rectifier,
    distort_to_raw,
    needs_rectification,
    stereo_baseline,
)
from depth_kd_core.errors import DataError

K = np.array([[400.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])


def _info(store: Stores, D=(0.0,) * 5, R=np.eye(3), tx=0.0, model="plumb_bob"):
    ts = get_typestore(store)
    P = np.hstack([K, [[tx], [0], [0]]])
    names = ("D", "K", "R", "P") if store == Stores.ROS1_NOETIC else ("d", "k", "r", "p")
    values = [np.asarray(D, float), K.reshape(-1), np.asarray(R).reshape(-1), P.reshape(-1)]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    extra = {"seq": 0} if store == Stores.ROS1_NOETIC else {}
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                       width=0, do_rectify=False)
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=Header(stamp=Time(sec=1, nanosec=0), frame_id="c", **extra), height=480,
        width=640, distortion_model=model, binning_x=0, binning_y=0, roi=roi,
        **dict(zip(names, values)))


@pytest.mark.parametrize("store", [Stores.ROS2_HUMBLE, Stores.ROS1_NOETIC])
def test_both_ros_spellings_are_read(store):
    calib = CameraCalibration.from_msg(_info(store, D=(0.1, 0, 0, 0, 0), tx=-40.0))
    np.testing.assert_array_equal(calib.K, K)
    assert calib.P[0, 3] == -40.0 and calib.D[0] == 0.1
    assert (calib.width, calib.height) == (640, 480)
    assert CameraCalibration.from_dict(calib.to_dict()).to_dict() == calib.to_dict()


def test_rectification_decision():
    rectified = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE))
    raw = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE, D=(-0.2, 0.1, 0, 0, 0)))
    assert rectified.is_rectified() and not raw.is_rectified()
    assert not needs_rectification(rectified, "/cam/image_raw", "auto")
    assert needs_rectification(raw, "/cam/image_raw", "auto")
    assert not needs_rectification(raw, "/cam/image_rect_color", "auto")  # image_proc output
    assert needs_rectification(rectified, "/cam/image_raw", "always")
    assert not needs_rectification(raw, "/cam/image_raw", "never")
    with pytest.raises(DataError, match="rectify must be 'auto', 'always' or 'never'"):
        needs_rectification(raw, "/x", "sometimes")


def test_calibration_scales_to_downscaled_images():
    calib = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE, tx=-40.0))
    half = calib.scaled_to(240, 320)
    np.testing.assert_allclose(half.rectified_K(), [[200, 0, 159.5], [0, 200, 119.5], [0, 0, 1]])
    assert half.P[0, 3] == pytest.approx(-20.0)  # Tx = -fx * B scales with fx ...
    left = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE)).scaled_to(240, 320)
    assert stereo_baseline(left, half) == pytest.approx(0.1)  # ... so B stays 40 / 400 m
    assert calib.aspect_mismatch(240, 320) == "" and calib.aspect_mismatch(241, 320) == ""


def test_another_aspect_ratio_scales_per_axis_with_a_warning_text():
    # the one rule of bag_infer, the datasets and the nodes: per axis, never refused
    calib = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE, tx=-40.0))
    binned = calib.scaled_to(240, 640)  # binning_y = 2 only
    np.testing.assert_allclose(binned.rectified_K(), [[400, 0, 319.5], [0, 200, 119.5],
                                                      [0, 0, 1]])
    assert binned.P[0, 3] == pytest.approx(-40.0)
    assert calib.aspect_mismatch(240, 640, "/cam") == (
        "/cam: camera_info is for 640x480 images but the images are 640x240 (different aspect "
        "ratio: ROI?); scaling K per axis")


def test_baseline_from_the_right_projection():
    left = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE))
    right = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE, tx=-400.0 * 0.12))
    assert stereo_baseline(left, right) == pytest.approx(0.12)
    with pytest.raises(DataError, match=r"is the pair swapped"):
        stereo_baseline(right, left)


@pytest.mark.parametrize("model, D", [("plumb_bob", (-0.15, 0.04, 0.001, -0.001, 0.0)),
                                      ("equidistant", (0.05, -0.01, 0.0, 0.0))])
def test_rectifier_undoes_the_distortion(model, D):
    rng = np.random.default_rng(0)
    rect = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (9, 9), 3)
    R = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0]
    calib = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE, D=D, R=R, model=model))
    if model == "equidistant":
        v, u = np.mgrid[0:480, 0:640].astype(np.float32)
        pts = np.stack([u.ravel(), v.ravel()], 1)[:, None]
        m = cv2.fisheye.undistortPoints(pts, K, np.asarray(D), R=R, P=K).reshape(480, 640, 2)
        raw = cv2.remap(rect, m[..., 0], m[..., 1], cv2.INTER_LINEAR)
    else:
        raw = distort_to_raw(rect, K, np.asarray(D), R, K)
    back = Rectifier(calib).image(raw)
    inner = np.s_[40:-40, 40:-40]
    err = np.abs(back.astype(int) - rect)[inner].mean()
    assert err < 2.0 and np.abs(raw.astype(int) - rect)[inner].mean() > 3 * err


def test_unknown_distortion_model_is_named():
    calib = CameraCalibration.from_msg(_info(Stores.ROS2_HUMBLE, model="kannala_brandt_9"))
    with pytest.raises(DataError, match=r"field 'distortion_model' is 'kannala_brandt_9'"):
        Rectifier(calib, "/cam/camera_info")
