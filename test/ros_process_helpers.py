"""What the real-rclpy node tests share: node processes, an rclpy client, fixtures, builders.

Node processes started in a test namespace, an rclpy client that publishes frames and
collects outputs, their fixtures, and message builders.

Import after ``pytest.importorskip("rclpy")``: this module needs rclpy and the message
packages. DDS stays on this host: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a test-only
ROS_DOMAIN_ID (100-200) in the client and every node process, plus the package's Fast DDS
profile (config/fastdds_large_images.xml: transports only).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.messages import camera_info_msg, image_msg, make_header
from depth_kd_core.data.camera import CameraCalibration
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_ros.conversions import ros2_message_types

from conftest import REPO_ROOT

NS = "/depth_kd_test"
DOMAIN_ID = str(random.Random(os.getpid()).randint(100, 200))
PROFILE = REPO_ROOT / "config" / "fastdds_large_images.xml"
START_S = 180.0  # a node imports torch and loads its checkpoint before it answers
TYPES = ros2_message_types()  # rclpy message classes
H, W = 96, 320  # synthetic camera frames
S1, S2, S3 = ((1_700_000_000 + k, 250_000_000) for k in range(3))
COMMON = {"device": "cpu", "threads": 1}  # parameters of every node process
ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": DOMAIN_ID,
       "FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE), "RCUTILS_COLORIZED_OUTPUT": "0",
       "PYTHONUNBUFFERED": "1"}


def _node_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ROS_LOCALHOST_ONLY"}
    env.update(ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def _command(executable: str) -> list[str]:
    """Return the node's command: its console script beside this interpreter, else its module.

    The console script is there when the package is installed; otherwise the module of this
    checkout runs.
    """
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
        """Publish ``publish`` until every topic in ``want`` carried a message stamped ``stamp``.

        Returns those messages.
        """
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
        """Subscribe ``topics`` and wait until the node publishes each.

        Outputs made once per stamp, like the teacher's, are lost when the subscription is not
        matched yet.
        """
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
        """Send frames with fresh stamps until the node answers with our camera_info's fx.

        ``publish(stamp)`` -> [(topic, msg)]. Camera_info and image are separate best-effort
        topics: the first frames may arrive before the calibration.
        """
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



def rclpy_context():
    """Yield an rclpy context with this module's DDS settings (for a module fixture).

    The context is shut down and the environment restored afterwards.
    """
    saved = {k: os.environ.get(k) for k in [*ENV, "ROS_LOCALHOST_ONLY"]}
    os.environ.update(ENV)  # read by rcl/Fast DDS when the context starts
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def running_client(context):
    """Yield a :class:`Client`, destroyed afterwards (for a module fixture)."""
    c = Client(context)
    yield c
    c.executor.shutdown()
    c.node.destroy_node()


def synthetic_frame() -> tuple[SyntheticWorld, dict]:
    """Return the synthetic world at H x W and its first stereo frame."""
    w = SyntheticWorld(0, H, W)
    return w, w.sample(0)


def frame_header(stamp, frame_id: str):
    return make_header(TYPES, stamp, frame_id)


def frame_image(rgb: np.ndarray, stamp, frame_id: str = "cam_optical", **override) -> Image:
    """Make an rgb8 Image of ``rgb``; ``override`` replaces fields (to break the message)."""
    fields = {**mc.image_fields(rgb, "rgb8"), **override}
    return image_msg(TYPES, frame_header(stamp, frame_id), fields)


def frame_info(K: np.ndarray, stamp, frame_id: str = "cam_optical", tx: float = 0.0,
               size: tuple[int, int] = (H, W)) -> CameraInfo:
    """Make a rectified CameraInfo with intrinsics K and P[0, 3] = tx (REP 104)."""
    calib = CameraCalibration(size[1], size[0], "plumb_bob", np.zeros(5), K, np.eye(3),
                              np.hstack([K, [[tx], [0.0], [0.0]]]))
    return camera_info_msg(TYPES, frame_header(stamp, frame_id), calib)


def pixels(msg) -> np.ndarray:
    return mc.image_to_array(msg)


def assert_exit_0_on_ctrl_c(procs: dict[str, NodeProcess]) -> None:
    """Ctrl-C every (still running) node: each exits 0 without a traceback."""
    for name, proc in procs.items():
        assert proc.alive(), f"{name} died:\n{proc.text()[-3000:]}"
        proc.proc.send_signal(signal.SIGINT)
    for name, proc in procs.items():
        assert proc.proc.wait(30) == 0, proc.text()[-3000:]
        assert "Traceback" not in proc.text()
