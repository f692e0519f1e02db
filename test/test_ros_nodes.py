"""The rclpy nodes themselves (needs a sourced ROS 2 Humble/Jazzy; skipped without rclpy): an
image in gives depth, camera_info, uncertainty and colourised depth out with the input header;
a stereo set gives teacher depth, error and metrics; parameters are declared with descriptors
and refused when out of range or read-only."""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: these tests need ROS 2 "
                                            "(source /opt/ros/<distro>/setup.bash)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray  # noqa: E402

from depth_kd_core.data import msg_codec as mc  # noqa: E402
from depth_kd_ros import conversions as cv  # noqa: E402
from depth_kd_ros.mono_depth_node import MonoDepthNode  # noqa: E402
from depth_kd_ros.ros_params import PUBLISHER_QOS, descriptor  # noqa: E402
from depth_kd_ros.stereo_compare_core import STEREO_PARAMS  # noqa: E402
from depth_kd_ros.stereo_compare_node import StereoCompareNode  # noqa: E402
from inference_helpers import tiny_checkpoint  # noqa: E402

pytestmark = pytest.mark.rclpy
H, W = 64, 192
STAMP = (1_700_000_000, 123_456_789)


@pytest.fixture()
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("n") / "adu.pt")


def _image(types, frame_id: str, value: int = 0) -> Image:
    rgb = np.random.default_rng(value).integers(0, 256, (H, W, 3), dtype=np.uint8)
    header = cv.make_header(types, STAMP, frame_id)
    return cv.image_msg(types, header, mc.image_fields(rgb, "rgb8"))


def _info(types, frame_id: str, tx: float = 0.0) -> CameraInfo:
    from depth_kd_core.data.camera_model import CameraCalibration

    K = np.array([[100.0, 0, (W - 1) / 2], [0, 100.0, (H - 1) / 2], [0, 0, 1]])
    calib = CameraCalibration(W, H, "plumb_bob", np.zeros(5), K, np.eye(3),
                              np.hstack([K, [[tx], [0], [0]]]))
    return cv.camera_info_msg(types, cv.make_header(types, STAMP, frame_id), calib)


def _exchange(context, node, publish: dict, listen: dict, timeout: float = 60.0) -> dict:
    """Publish ``publish`` {topic: msg} until every ``listen`` {topic: type} got a message."""
    helper = rclpy.create_node("depth_kd_test_helper", context=context)
    pubs = {t: helper.create_publisher(type(m), t, PUBLISHER_QOS) for t, m in publish.items()}
    got: dict = {}
    for topic, cls in listen.items():
        helper.create_subscription(cls, topic, lambda m, t=topic: got.setdefault(t, m), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(helper)
    end = time.monotonic() + timeout
    while len(got) < len(listen) and time.monotonic() < end:
        for topic, msg in publish.items():
            pubs[topic].publish(msg)
        executor.spin_once(timeout_sec=0.2)
    executor.shutdown()
    helper.destroy_node()
    assert set(got) == set(listen), f"no message on {set(listen) - set(got)}"
    return got


def test_mono_node_publishes_depth_with_the_input_header(context, ckpt):
    node = MonoDepthNode(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(ckpt)), Parameter("device", value="cpu")])
    types = cv.ros2_message_types()
    got = _exchange(context, node, {"image": _image(types, "cam_optical"),
                                    "camera_info": _info(types, "cam_optical")},
                    {"depth": Image, "depth/camera_info": CameraInfo, "uncertainty": Image,
                     "depth/colorized": Image})
    depth = got["depth"]
    assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", H, W, 4 * W)
    assert (depth.header.stamp.sec, depth.header.stamp.nanosec) == STAMP
    assert depth.header.frame_id == "cam_optical"
    assert np.isfinite(mc.image_to_array(depth)).all()
    assert got["depth/camera_info"].header.stamp == depth.header.stamp
    assert got["depth/colorized"].encoding == "bgr8"
    node.destroy_node()


def test_mono_node_parameters_have_descriptors_and_refuse_bad_values(context, ckpt):
    node = MonoDepthNode(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(ckpt)), Parameter("device", value="cpu")])
    desc = node.describe_parameter("output_scale")
    assert desc.floating_point_range[0].to_value == 1.0 and "fraction" in desc.description
    assert not node.set_parameters([Parameter("output_scale", value=3.0)])[0].successful
    assert not node.set_parameters([Parameter("device", value="cuda")])[0].successful
    assert node.set_parameters([Parameter("max_sigma", value=2.0)])[0].successful
    assert node.core.params["max_sigma"] == 2.0
    node.destroy_node()


def test_stereo_node_publishes_teacher_error_and_metrics(context, ckpt):
    node = StereoCompareNode(context=context, parameter_overrides=[
        Parameter("student_checkpoint", value=str(ckpt)), Parameter("device", value="cpu"),
        Parameter("sgbm_num_disparities", value=16)])
    types = cv.ros2_message_types()
    got = _exchange(context, node, {
        "left/image_rect": _image(types, "left", 1), "right/image_rect": _image(types, "r", 2),
        "left/camera_info": _info(types, "left"),
        "right/camera_info": _info(types, "r", tx=-100.0 * 0.1)},
        {"teacher/depth": Image, "abs_error": Image, "metrics": Float32MultiArray})
    assert got["teacher/depth"].encoding == "32FC1"
    assert got["metrics"].layout.dim[0].label == "abs_rel,rmse,delta1,frames"
    node.destroy_node()


def test_integer_descriptor_carries_the_step():
    spec = next(s for s in STEREO_PARAMS if s.name == "sgbm_num_disparities")
    rng = descriptor(spec).integer_range[0]
    assert (rng.from_value, rng.to_value, rng.step) == (16, 512, 16)
