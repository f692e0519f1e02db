"""Both nodes as their own processes under a real rclpy (ROS 2 Jazzy from PyPI, ``.[ros-pip]``,
or a sourced ROS 2), driven by a real rclpy client in this process with frames of the
synthetic world and of ../shared/realdata's ROS 1 compressed camera bag. Outputs are checked by
value against the same checkpoint run in-process; parameters through the parameter services;
malformed frames are dropped with the node still answering; Ctrl-C exits 0; bad start-up
values end the process with one line naming the parameter.

DDS stays on this host: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a test-only ROS_DOMAIN_ID
(100-200) in this process and every node process, plus the package's Fast DDS profile
(config/fastdds_large_images.xml: transports only)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: pip install -e "
                                            "'.[test,ros-pip]' (or source a ROS 2 install)")

from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import DescribeParameters, SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray  # noqa: E402

from conftest import REALDATA, REPO_ROOT, realdata_path  # noqa: E402
from depth_kd_core.data.bags import codec as mc  # noqa: E402
from depth_kd_core.data.camera import CameraCalibration  # noqa: E402
from depth_kd_core.data.synthetic.world import SyntheticWorld  # noqa: E402
from depth_kd_core.inference import (DepthEstimator, StereoDepthEstimator,  # noqa: E402
                                     colorize_depth)
from depth_kd_core.metrics import depth_metrics  # noqa: E402
from depth_kd_ros import conversions as cv  # noqa: E402
from depth_kd_ros.stereo_compare_core import teacher_depth_nan  # noqa: E402
from inference_helpers import tiny_checkpoint  # noqa: E402

pytestmark = [pytest.mark.rclpy, pytest.mark.slow]
NS = "/depth_kd_test"
DOMAIN_ID = str(random.Random(os.getpid()).randint(100, 200))
PROFILE = REPO_ROOT / "config" / "fastdds_large_images.xml"
START_S = 180.0  # a node imports torch and loads its checkpoint before it answers
TYPES = None  # rclpy message classes, set by the context fixture
H, W = 96, 320  # synthetic camera frames
SGBM_DISPARITIES = 64
S1, S2, S3 = ((1_700_000_000 + k, 250_000_000) for k in range(3))
REAL_BAG = "ros1_compressed_camera_bag/aruco_images.bag"
BAD_STARTS = {"int_for_double": {"output_scale": 1}, "out_of_range": {"output_scale": 3.0}}
ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": DOMAIN_ID,
       "FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE), "RCUTILS_COLORIZED_OUTPUT": "0",
       "PYTHONUNBUFFERED": "1"}


def _node_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ROS_LOCALHOST_ONLY"}
    env.update(ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def _command(executable: str) -> list[str]:
    """The node's console script beside this interpreter (an installed package), else the
    module of this checkout."""
    script = Path(sys.executable).parent / executable
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", f"depth_kd_ros.{executable}"]


class NodeProcess:
    """One node started as its own process in NS; its output goes to ``log``."""

    def __init__(self, executable: str, params: dict, log: Path, name: str = "") -> None:
        args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
        if name:
            args += ["-r", f"__node:={name}"]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                _command(executable) + ["--ros-args", "-r", f"__ns:={NS}", *args],
                env=_node_env(), stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C; the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


class Client:
    """A real rclpy node in this process that publishes frames and collects outputs."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node("depth_kd_test_client", namespace=NS, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.got: dict[str, list] = {}
        self.pubs: dict[str, object] = {}
        self.last_input_width = W

    def listen(self, topic: str, cls: type) -> list:
        if topic not in self.got:
            self.got[topic] = []
            self.node.create_subscription(cls, topic, self.got[topic].append, 10)
        return self.got[topic]

    def publish(self, topic: str, msg) -> None:
        if topic not in self.pubs:
            self.pubs[topic] = self.node.create_publisher(type(msg), topic, 10)
        self.pubs[topic].publish(msg)

    def exchange(self, publish: list[tuple[str, object]], want: dict[str, type],
                 stamp: tuple[int, int], proc: NodeProcess, timeout: float = START_S) -> dict:
        """Publish ``publish`` until every topic in ``want`` carried a message stamped
        ``stamp``; those messages."""
        boxes = {t: self.listen(t, cls) for t, cls in want.items()}
        found: dict = {}
        end = time.monotonic() + timeout
        while len(found) < len(want) and time.monotonic() < end:
            assert proc.alive(), f"node exited:\n{proc.text()[-3000:]}"
            for topic, msg in publish:
                self.publish(topic, msg)
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                self.executor.spin_once(timeout_sec=0.05)
            for topic, box in boxes.items():
                for msg in box:
                    if (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp:
                        found.setdefault(topic, msg)
        assert set(found) == set(want), (f"nothing stamped {stamp} on {set(want) - set(found)}"
                                         f"; node log:\n{proc.text()[-3000:]}")
        return found

    def wait_for_publishers(self, topics: dict[str, type], proc: NodeProcess) -> None:
        """Subscribe ``topics`` and wait until the node publishes each (outputs made once per
        stamp, like the teacher's, are lost when the subscription is not matched yet)."""
        for topic, cls in topics.items():
            self.listen(topic, cls)
        end = time.monotonic() + START_S
        while time.monotonic() < end:
            if all(self.node.count_publishers(f"{NS}/{t}") for t in topics):
                for _ in range(10):  # let the matching settle on both sides
                    self.executor.spin_once(timeout_sec=0.05)
                return
            assert proc.alive(), f"node exited:\n{proc.text()[-3000:]}"
            self.executor.spin_once(timeout_sec=0.1)
        raise AssertionError(f"no publisher on {list(topics)}")

    def calibrate(self, publish, fx: float, proc: NodeProcess) -> None:
        """Send frames with fresh stamps (``publish(stamp)`` -> [(topic, msg)]) until the node
        answers with our camera_info's fx (camera_info and image are separate best-effort
        topics: the first frames may arrive before the calibration)."""
        for k in range(30):
            stamp = (1_600_000_000 + k, 0)
            info = self.exchange(publish(stamp), {"depth/camera_info": CameraInfo}, stamp,
                                 proc)["depth/camera_info"]
            scale = info.width / self.last_input_width
            if abs(info.k[0] - fx * scale) < 1e-3 * fx:
                return
        raise AssertionError(f"the node never used the camera_info; log:\n{proc.text()[-3000:]}")

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(srv_type, f"{NS}/{name}")
        assert client.wait_for_service(timeout_sec=timeout), name
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), name
        return future.result()

    def set_parameter(self, node: str, name: str, value) -> object:
        kind, field = {bool: (ParameterType.PARAMETER_BOOL, "bool_value"),
                       int: (ParameterType.PARAMETER_INTEGER, "integer_value"),
                       float: (ParameterType.PARAMETER_DOUBLE, "double_value"),
                       str: (ParameterType.PARAMETER_STRING, "string_value")}[type(value)]
        pv = ParameterValue(type=kind, **{field: value})
        request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=pv)])
        return self.call(SetParameters, f"{node}/set_parameters", request).results[0]


@pytest.fixture(scope="module")
def context():
    global TYPES
    saved = {k: os.environ.get(k) for k in [*ENV, "ROS_LOCALHOST_ONLY"]}
    os.environ.update(ENV)  # read by rcl/Fast DDS when the context starts
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    TYPES = cv.ros2_message_types()
    yield ctx
    rclpy.shutdown(context=ctx)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ros") / "adu.pt")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, ckpt, context):
    """The three node processes, started together (each spends seconds importing torch)."""
    folder = tmp_path_factory.mktemp("nodes")
    common = {"device": "cpu", "threads": 1}
    procs = {
        "mono": NodeProcess("mono_depth_node", {"checkpoint": ckpt, **common},
                            folder / "mono.log"),
        "stereo": NodeProcess("stereo_compare_node", {
            "student_checkpoint": ckpt, "sgbm_num_disparities": SGBM_DISPARITIES,
            "teacher_rate_hz": 100.0, **common}, folder / "stereo.log"),
    }
    # started now too, so that their imports overlap: the real-data node and two bad starts
    if (REALDATA / REAL_BAG).is_file():
        procs["real"] = NodeProcess("mono_depth_node", {
            "checkpoint": ckpt, "image_transport": "compressed", "output_scale": 0.25,
            **common}, folder / "real.log", name="mono_real")
    for name, params in BAD_STARTS.items():
        procs[name] = NodeProcess("mono_depth_node", {"checkpoint": ckpt, **common, **params},
                                  folder / f"{name}.log", name=f"mono_{name}")
    yield procs
    for proc in procs.values():
        proc.kill()


@pytest.fixture(scope="module")
def client(context):
    c = Client(context)
    yield c
    c.executor.shutdown()
    c.node.destroy_node()


@pytest.fixture(scope="module")
def world():
    w = SyntheticWorld(0, H, W)
    return w, w.sample(0)


def _header(stamp, frame_id: str):
    return cv.make_header(TYPES, stamp, frame_id)


def _image(rgb: np.ndarray, stamp, frame_id: str = "cam_optical", **override) -> Image:
    fields = {**mc.image_fields(rgb, "rgb8"), **override}
    return cv.image_msg(TYPES, _header(stamp, frame_id), fields)


def _info(K: np.ndarray, stamp, frame_id: str = "cam_optical", tx: float = 0.0,
          size: tuple[int, int] = (H, W)) -> CameraInfo:
    calib = CameraCalibration(size[1], size[0], "plumb_bob", np.zeros(5), K, np.eye(3),
                              np.hstack([K, [[tx], [0.0], [0.0]]]))
    return cv.camera_info_msg(TYPES, _header(stamp, frame_id), calib)


def _array(msg) -> np.ndarray:
    return mc.image_to_array(msg)


def test_mono_node_publishes_depth_sigma_colour_and_camera_info_by_value(nodes, client, world,
                                                                         ckpt):
    w, frame = world
    client.calibrate(lambda st: [("camera_info", _info(w.K, st)),
                                 ("image", _image(frame["left"], st))], w.K[0, 0], nodes["mono"])
    got = client.exchange([("image", _image(frame["left"], S1)),
                           ("camera_info", _info(w.K, S1))],
                          {"depth": Image, "depth/camera_info": CameraInfo,
                           "uncertainty": Image, "depth/colorized": Image}, S1, nodes["mono"])
    expected = DepthEstimator.from_checkpoint(ckpt, "cpu").predict(frame["left"], w.K)
    depth = got["depth"]
    assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", H, W, 4 * W)
    assert depth.header.frame_id == "cam_optical"
    np.testing.assert_allclose(_array(depth), expected.depth, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(_array(got["uncertainty"]), expected.sigma, rtol=1e-3, atol=1e-4)
    bgr = _array(got["depth/colorized"])
    assert got["depth/colorized"].encoding == "bgr8"
    assert np.mean(bgr != colorize_depth(expected.depth, 1.0, 80.0, "turbo")) < 1e-3
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
        got = client.exchange([("image", _image(frame["left"], S2)),
                               ("camera_info", _info(w.K, S2))],
                              {"depth": Image, "depth/camera_info": CameraInfo}, S2,
                              nodes["mono"])
    finally:
        assert client.set_parameter("mono_depth", "output_scale", 1.0).successful
    assert (got["depth"].height, got["depth"].width) == (H // 2, W // 2)
    scaled = CameraCalibration.from_msg(_info(w.K, S2)).scaled_to(H // 2, W // 2)
    np.testing.assert_allclose(np.asarray(got["depth/camera_info"].k).reshape(3, 3), scaled.K)


def test_mono_node_drops_malformed_frames_and_keeps_answering(nodes, client, world):
    w, frame = world
    good = mc.image_fields(frame["left"], "rgb8")
    bad = [_image(frame["left"], S3, step=5), _image(frame["left"], S3, encoding="weird8"),
           _image(frame["left"], S3, data=bytes(good["data"][:1000])),
           _image(frame["left"], S3, height=0, data=b"")]
    for _ in range(3):
        for msg in bad:
            client.publish("image", msg)
            client.executor.spin_once(timeout_sec=0.05)
    got = client.exchange([("image", _image(frame["left"], S3))], {"depth": Image}, S3,
                          nodes["mono"])
    assert got["depth"].height == H and nodes["mono"].alive()
    deadline = time.monotonic() + 10
    while "dropped frame" not in nodes["mono"].text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "dropped frame" in nodes["mono"].text()
    assert "Traceback" not in nodes["mono"].text()


def test_stereo_node_teacher_error_and_metrics_by_value(nodes, client, world, ckpt):
    w, frame = world
    stamp = S1
    tx = -w.K[0, 0] * w.baseline
    outputs = {"student/depth": Image, "teacher/depth": Image, "abs_error": Image}
    client.wait_for_publishers({**outputs, "metrics": Float32MultiArray}, nodes["stereo"])
    got = client.exchange(
        [("left/image_rect", _image(frame["left"], stamp, "left_optical")),
         ("right/image_rect", _image(frame["right"], stamp, "right_optical")),
         ("left/camera_info", _info(w.K, stamp, "left_optical")),
         ("right/camera_info", _info(w.K, stamp, "right_optical", tx=tx))],
        outputs, stamp, nodes["stereo"])
    metrics = client.listen("metrics", Float32MultiArray)
    end = time.monotonic() + 10
    while not metrics and time.monotonic() < end:
        client.executor.spin_once(timeout_sec=0.1)
    student = DepthEstimator.from_checkpoint(ckpt, "cpu").predict(frame["left"], w.K).depth
    sgbm = StereoDepthEstimator.sgbm(num_disparities=SGBM_DISPARITIES, block_size=5)
    teacher = teacher_depth_nan(sgbm.predict(frame["left"], frame["right"], w.K,
                                             w.baseline).depth, sgbm.cfg.max_depth)
    assert got["teacher/depth"].header.frame_id == "left_optical"
    np.testing.assert_allclose(_array(got["student/depth"]), student, rtol=1e-3, atol=1e-4)
    published = _array(got["teacher/depth"])
    np.testing.assert_array_equal(np.isnan(published), np.isnan(teacher))
    assert np.nanmax(published) < sgbm.cfg.max_depth  # nothing clamped to the range limit
    # OpenCV's parallel SGBM + WLS can settle a handful of pixels differently in another
    # process (measured: 13 of 30720 with other CPU/thread settings); all others are exact
    same = np.isclose(published, teacher, rtol=1e-5, equal_nan=True)
    assert same.mean() > 0.995, f"{(~same).sum()} teacher pixels differ"
    np.testing.assert_allclose(_array(got["abs_error"]), np.abs(student - published), rtol=1e-3,
                               atol=1e-3, equal_nan=True)
    assert metrics, "metrics were not published with the teacher pair"
    first = np.asarray(metrics[0].data)
    both = np.isfinite(teacher) & np.isfinite(student)
    expected = depth_metrics(np.where(both, student, 1.0), np.where(both, teacher, 0.0),
                             min_depth=0.1, max_depth=80.0)
    assert first[3] == 1.0 and first[0] == pytest.approx(expected["abs_rel"], rel=1e-2)


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
    image = TYPES[cv.COMPRESSED](header=_header(stamp, "raspicam"), format=jpeg.format,
                                 data=bytes(jpeg.data))
    info = cv.camera_info_msg(TYPES, _header(stamp, "raspicam"), calib)
    proc = nodes["real"]

    def frames(st):
        return [("camera_info", cv.camera_info_msg(TYPES, _header(st, "raspicam"), calib)),
                ("image/compressed", TYPES[cv.COMPRESSED](header=_header(st, "raspicam"),
                                                          format=jpeg.format,
                                                          data=bytes(jpeg.data)))]

    try:
        client.last_input_width = int(calib.width)
        client.calibrate(frames, calib.K[0, 0], proc)
        got = client.exchange([("image/compressed", image), ("camera_info", info)],
                              {"depth": Image, "depth/camera_info": CameraInfo}, stamp, proc)
    finally:
        client.last_input_width = W
    rgb = cv.msg_to_rgb8(image)
    h, w = rgb.shape[0] // 4, rgb.shape[1] // 4
    assert (got["depth"].height, got["depth"].width) == (h, w) == (240, 320)
    expected = DepthEstimator.from_checkpoint(ckpt, "cpu").predict(
        rgb, calib.scaled_to(*rgb.shape[:2]).rectified_K(), (h, w))
    np.testing.assert_allclose(_array(got["depth"]), expected.depth, rtol=1e-3, atol=1e-4)
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


def test_the_nodes_exit_0_on_ctrl_c(nodes):
    running = {name: p for name, p in nodes.items() if name not in BAD_STARTS}
    for name, proc in running.items():
        assert proc.alive(), f"{name} died:\n{proc.text()[-3000:]}"
        proc.proc.send_signal(signal.SIGINT)
    for name, proc in running.items():
        assert proc.proc.wait(30) == 0, proc.text()[-3000:]
        assert "Traceback" not in proc.text()

