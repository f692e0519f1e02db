"""mono_depth_node as its own process under a real rclpy, driven by a real rclpy client.

The rclpy of ROS 2 Jazzy from PyPI (``.[ros-pip]``) or of a sourced ROS 2; the client in this
process sends frames of the synthetic world and of ../shared/realdata's ROS 1 compressed
camera bag. Checked: outputs by value against the same checkpoint run in-process,
/diagnostics, parameters through the parameter services, malformed frames dropped with the
node still answering, bad start-up values ending the process with one line naming the
parameter, Ctrl-C exiting 0.

Processes, client and DDS settings: ros_process_helpers.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed: pip install -e "
                                    "'.[test,ros-pip]' (or source a ROS 2 install)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.srv import DescribeParameters  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depth_kd_core.data.bags import codec as mc  # noqa: E402
from depth_kd_core.data.bags.messages import COMPRESSED, camera_info_msg  # noqa: E402
from depth_kd_core.data.camera import CameraCalibration  # noqa: E402
from depth_kd_core.inference import DepthEstimator  # noqa: E402
from depth_kd_core.visualize import colorize_depth  # noqa: E402
from depth_kd_ros.conversions import bridged_msg_to_rgb8  # noqa: E402

from conftest import REALDATA, realdata_path  # noqa: E402
from inference_helpers import tiny_checkpoint  # noqa: E402
from ros_process_helpers import (  # noqa: E402
    COMMON,
    S1,
    S2,
    S3,
    START_S,
    TYPES,
    H,
    NodeProcess,
    W,
    assert_exit_0_on_ctrl_c,
    frame_header,
    frame_image,
    frame_info,
    pixels,
    rclpy_context,
    running_client,
    synthetic_frame,
)

pytestmark = [pytest.mark.rclpy, pytest.mark.slow]
REAL_BAG = "ros1_compressed_camera_bag/aruco_images.bag"
BAD_STARTS = {"int_for_double": {"output_scale": 1}, "out_of_range": {"output_scale": 3.0}}


@pytest.fixture(scope="module")
def context():
    yield from rclpy_context()


@pytest.fixture(scope="module")
def client(context):
    yield from running_client(context)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ros") / "adu.pt")


@pytest.fixture(scope="module")
def world():
    return synthetic_frame()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, ckpt, context):
    """Start the mono node, the real-data one and two bad starts, all together.

    Started together so that their imports overlap (each spends seconds importing torch).
    """
    folder = tmp_path_factory.mktemp("mono_nodes")
    procs = {"mono": NodeProcess("mono_depth_node", {"checkpoint": ckpt, **COMMON},
                                 folder / "mono.log")}
    if (REALDATA / REAL_BAG).is_file():
        procs["real"] = NodeProcess("mono_depth_node", {
            "checkpoint": ckpt, "image_transport": "compressed", "output_scale": 0.25,
            **COMMON}, folder / "real.log", name="mono_real")
    for name, params in BAD_STARTS.items():
        procs[name] = NodeProcess("mono_depth_node", {"checkpoint": ckpt, **COMMON, **params},
                                  folder / f"{name}.log", name=f"mono_{name}")
    yield procs
    for proc in procs.values():
        proc.kill()


def test_mono_node_publishes_depth_sigma_colour_and_camera_info_by_value(nodes, client, world,
                                                                         ckpt):
    w, frame = world
    client.calibrate(lambda st: [("camera_info", frame_info(w.K, st)),
                                 ("image", frame_image(frame["left"], st))], w.K[0, 0],
                     nodes["mono"])
    got = client.exchange([("image", frame_image(frame["left"], S1)),
                           ("camera_info", frame_info(w.K, S1))],
                          {"depth": Image, "depth/camera_info": CameraInfo,
                           "uncertainty": Image, "depth/colorized": Image}, S1, nodes["mono"])
    expected = DepthEstimator.from_checkpoint(ckpt, "cpu").predict(frame["left"], w.K)
    depth = got["depth"]
    assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", H, W, 4 * W)
    assert depth.header.frame_id == "cam_optical"
    np.testing.assert_allclose(pixels(depth), expected.depth, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(pixels(got["uncertainty"]), expected.sigma, rtol=1e-3, atol=1e-4)
    bgr = pixels(got["depth/colorized"])
    assert got["depth/colorized"].encoding == "bgr8"
    assert np.mean(bgr != colorize_depth(expected.depth, 1.0, 80.0, "turbo",
                                         channels="bgr")) < 1e-3
    info = got["depth/camera_info"]
    assert (info.height, info.width, info.header.frame_id) == (H, W, "cam_optical")
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), w.K)


def test_mono_node_diagnostics_on_the_diagnostics_topic(nodes, client):
    box = client.listen("/diagnostics", DiagnosticArray)
    end = time.monotonic() + 30
    status = None
    while status is None and time.monotonic() < end:
        client.executor.spin_once(timeout_sec=0.1)
        status = next((s for a in box for s in a.status
                       if s.name == "mono_depth: mono depth"
                       and int(dict((v.key, v.value) for v in s.values)
                               .get("frames_processed", 0)) >= 1), None)
    assert status is not None, "no /diagnostics status of mono_depth after a frame"
    values = {v.key: v.value for v in status.values}
    assert status.hardware_id == "adu_student@cpu" and status.level == b"\x00"
    assert float(values["latency_ms_mean"]) > 0 and values["model"] == "adu_student"


def test_mono_node_parameters_through_the_parameter_services(nodes, client, world):
    w, frame = world
    request = DescribeParameters.Request(names=["output_scale", "threads", "device"])
    scale, threads, device = client.call(DescribeParameters, "mono_depth/describe_parameters",
                                         request).descriptors
    assert "fraction" in scale.description and not scale.read_only
    rng = scale.floating_point_range[0]
    assert (rng.from_value, rng.to_value) == (0.05, 1.0)
    assert threads.read_only and threads.integer_range[0].to_value == 256
    assert device.read_only
    refused = client.set_parameter("mono_depth", "output_scale", 3.0)
    assert not refused.successful
    read_only = client.set_parameter("mono_depth", "device", "cuda")
    assert not read_only.successful and "read-only" in read_only.reason
    assert client.set_parameter("mono_depth", "output_scale", 0.5).successful
    try:
        got = client.exchange([("image", frame_image(frame["left"], S2)),
                               ("camera_info", frame_info(w.K, S2))],
                              {"depth": Image, "depth/camera_info": CameraInfo}, S2,
                              nodes["mono"])
    finally:
        assert client.set_parameter("mono_depth", "output_scale", 1.0).successful
    assert (got["depth"].height, got["depth"].width) == (H // 2, W // 2)
    scaled = CameraCalibration.from_msg(frame_info(w.K, S2)).scaled_to(H // 2, W // 2)
    np.testing.assert_allclose(np.asarray(got["depth/camera_info"].k).reshape(3, 3), scaled.K)


def test_mono_node_drops_malformed_frames_and_keeps_answering(nodes, client, world):
    w, frame = world
    good = mc.image_fields(frame["left"], "rgb8")
    bad = [frame_image(frame["left"], S3, step=5),
           frame_image(frame["left"], S3, encoding="weird8"),
           frame_image(frame["left"], S3, data=bytes(good["data"][:1000])),
           frame_image(frame["left"], S3, height=0, data=b"")]
    for _ in range(3):
        for msg in bad:
            client.publish("image", msg)
            client.executor.spin_once(timeout_sec=0.05)
    got = client.exchange([("image", frame_image(frame["left"], S3))], {"depth": Image}, S3,
                          nodes["mono"])
    assert got["depth"].height == H and nodes["mono"].alive()
    deadline = time.monotonic() + 10
    while "dropped frame" not in nodes["mono"].text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "dropped frame" in nodes["mono"].text()
    assert "Traceback" not in nodes["mono"].text()


@pytest.mark.realdata
def test_mono_node_on_the_real_compressed_camera_bag(nodes, client, ckpt):
    from rosbags.rosbag1 import Reader
    from rosbags.typesys import Stores, get_typestore

    bag = realdata_path(*REAL_BAG.split("/"))
    ts = get_typestore(Stores.ROS1_NOETIC)
    with Reader(bag) as reader:
        msgs = {c.topic: ts.deserialize_ros1(raw, c.msgtype)
                for c, _, raw in reader.messages()}
    jpeg = msgs["/raspicam_node/image/compressed"]
    calib = CameraCalibration.from_msg(msgs["/raspicam_node/camera_info"], "bag camera_info")
    stamp = (int(jpeg.header.stamp.sec), int(jpeg.header.stamp.nanosec))
    image = TYPES[COMPRESSED](header=frame_header(stamp, "raspicam"), format=jpeg.format,
                              data=bytes(jpeg.data))
    info = camera_info_msg(TYPES, frame_header(stamp, "raspicam"), calib)
    proc = nodes["real"]

    def frames(st):
        return [("camera_info", camera_info_msg(TYPES, frame_header(st, "raspicam"), calib)),
                ("image/compressed", TYPES[COMPRESSED](header=frame_header(st, "raspicam"),
                                                       format=jpeg.format,
                                                       data=bytes(jpeg.data)))]

    try:
        client.last_input_width = int(calib.width)
        client.calibrate(frames, calib.K[0, 0], proc)
        got = client.exchange([("image/compressed", image), ("camera_info", info)],
                              {"depth": Image, "depth/camera_info": CameraInfo}, stamp, proc)
    finally:
        client.last_input_width = W
    rgb = bridged_msg_to_rgb8(image)
    h, w = rgb.shape[0] // 4, rgb.shape[1] // 4
    assert (got["depth"].height, got["depth"].width) == (h, w) == (240, 320)
    expected = DepthEstimator.from_checkpoint(ckpt, "cpu").predict(
        rgb, calib.scaled_to(*rgb.shape[:2]).rectified_K(), (h, w))
    np.testing.assert_allclose(pixels(got["depth"]), expected.depth, rtol=1e-3, atol=1e-4)
    k = np.asarray(got["depth/camera_info"].k).reshape(3, 3)
    np.testing.assert_allclose(k, calib.scaled_to(h, w).K)
    assert k[0, 0] == pytest.approx(calib.K[0, 0] / 4, rel=1e-3)


def test_bad_start_up_values_end_the_node_with_one_line_naming_the_parameter(nodes):
    for name in BAD_STARTS:
        proc = nodes[name]
        assert proc.proc.wait(START_S) == 1, proc.text()
        text = proc.text()
        assert "Traceback" not in text, text
        lines = [ln for ln in text.splitlines() if "output_scale" in ln]
        assert len(lines) == 1 and lines[0].startswith("mono_depth_node: parameter "
                                                       "'output_scale'"), text


def test_the_mono_nodes_exit_0_on_ctrl_c(nodes):
    assert_exit_0_on_ctrl_c({name: p for name, p in nodes.items() if name not in BAD_STARTS})
