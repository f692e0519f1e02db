"""The thin rclpy node classes, run against small stand-ins of the ROS 2 Python modules.

The wiring is thus checked in-process and quickly. This checks OUR wiring only — subscriptions with
depth-1 best-effort QoS on the right topics and types, reliable publishers, every parameter
declared with a descriptor, inference skipped without subscribers, outputs published where somebody
listens, diagnostics filled, the four stereo topics fed to the core's stamp pairing. Behaviour
against real rclpy (the PyPI wheels, ``.[ros-pip]``) is tested with the nodes as their own
processes in test_ros_mono_node.py and test_ros_stereo_node.py.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from depth_kd_core.data.bags import codec as mc
from depth_kd_ros.params import MONO_PARAMS, STEREO_PARAMS

from bag_helpers import TS, camera_info, image
from inference_helpers import tiny_checkpoint, torch_single_thread  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@dataclass
class Pub:
    msg_type: Any
    topic: str
    qos: Any
    subscribers: int = 0
    sent: list = field(default_factory=list)

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg: Any) -> None:
        self.sent.append(msg)


class FakeNode:
    """Records what a node creates; parameters come from ``FakeNode.overrides``."""

    overrides: dict[str, Any] = {}

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name, self.pubs, self.subs, self.declared = name, {}, {}, {}
        self.param_callbacks: list = []
        self.timers: list = []

    def declare_parameter(self, name, value, descriptor):
        self.declared[name] = (value, descriptor)
        return types.SimpleNamespace(value=self.overrides.get(name, value))

    def has_parameter(self, name):
        return name in self.declared

    def get_name(self):
        return self.name

    def get_fully_qualified_name(self):
        return "/ns/" + self.name

    def create_timer(self, period, callback):
        self.timers.append((period, callback))

    def create_publisher(self, msg_type, topic, qos):
        self.pubs[topic] = Pub(msg_type, topic, qos)
        return self.pubs[topic]

    def create_subscription(self, msg_type, topic, callback, qos):
        self.subs[topic] = (msg_type, callback, qos)

    def add_on_set_parameters_callback(self, callback):
        self.param_callbacks.append(callback)

    def get_logger(self):
        import logging
        return logging.getLogger(f"fake.{self.name}")

    def get_clock(self):
        now = types.SimpleNamespace(nanoseconds=10**18, to_msg=lambda: TS.types[
            "builtin_interfaces/msg/Time"](sec=10**9, nanosec=0))
        return types.SimpleNamespace(now=lambda: now)

    def resolve_topic_name(self, name):
        return "/ns/" + name


class DiagnosticArray:
    def __init__(self, status):
        self.status = status
        self.header = types.SimpleNamespace(stamp=None)


def _diagnostic_names(node: FakeNode) -> set[str]:
    """Non-node parameters the diagnostics declare."""
    return {n for n in node.declared if n.startswith("diagnostic_updater.")}


@pytest.fixture()
def ros(monkeypatch):
    """Stand-in ROS 2 modules; message classes are the rosbags ones (same fields)."""
    mods: dict[str, types.ModuleType] = {}

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        mods[name] = m
        return m

    ns = types.SimpleNamespace
    tt = TS.types
    mod("rclpy", init=lambda args=None: None, spin=lambda node: None,
        try_shutdown=lambda: None)
    mod("rclpy.node", Node=FakeNode)
    mod("rclpy.executors", ExternalShutdownException=type("ExternalShutdown", (Exception,), {}))
    mod("rclpy.qos", QoSProfile=lambda **kw: ns(**kw),
        HistoryPolicy=ns(KEEP_LAST="keep_last"), DurabilityPolicy=ns(VOLATILE="volatile"),
        ReliabilityPolicy=ns(BEST_EFFORT="best_effort", RELIABLE="reliable"),
        qos_profile_system_default=ns(reliability="reliable", depth=10))
    mod("rcl_interfaces.msg", ParameterDescriptor=lambda **kw: ns(**kw),
        FloatingPointRange=lambda **kw: ns(**kw), IntegerRange=lambda **kw: ns(**kw),
        SetParametersResult=lambda **kw: ns(**kw))
    status = lambda **kw: ns(**kw)  # noqa: E731
    status.OK, status.WARN, status.ERROR = b"\x00", b"\x01", b"\x02"
    mod("diagnostic_msgs.msg", DiagnosticStatus=status, DiagnosticArray=DiagnosticArray,
        KeyValue=lambda key, value: (key, value))
    mod("sensor_msgs.msg", Image=tt["sensor_msgs/msg/Image"],
        CompressedImage=tt["sensor_msgs/msg/CompressedImage"],
        CameraInfo=tt["sensor_msgs/msg/CameraInfo"],
        RegionOfInterest=tt["sensor_msgs/msg/RegionOfInterest"])
    mod("std_msgs.msg", Header=tt["std_msgs/msg/Header"],
        Float32MultiArray=tt["std_msgs/msg/Float32MultiArray"],
        MultiArrayLayout=tt["std_msgs/msg/MultiArrayLayout"],
        MultiArrayDimension=tt["std_msgs/msg/MultiArrayDimension"])
    mod("builtin_interfaces.msg", Time=tt["builtin_interfaces/msg/Time"])
    for name in ("rcl_interfaces", "diagnostic_msgs", "sensor_msgs", "std_msgs",
                 "builtin_interfaces"):
        mod(name)
    for name, m in mods.items():
        monkeypatch.setitem(sys.modules, name, m)
    for name in ("depth_kd_ros.ros_glue", "depth_kd_ros.mono_depth_node",
                 "depth_kd_ros.stereo_compare_node"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("depth_kd_ros.ros_glue", "depth_kd_ros.mono_depth_node",
                 "depth_kd_ros.stereo_compare_node"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("w") / "adu.pt")


def _assert_declared(node: FakeNode, table) -> None:
    assert set(node.declared) - _diagnostic_names(node) == {s.name for s in table.specs}
    for spec in table.specs:
        default, desc = node.declared[spec.name]
        assert default == spec.default and desc.description.startswith(spec.description)
        assert desc.read_only == spec.read_only
        if spec.range and spec.kind is float:
            assert desc.floating_point_range[0].from_value == spec.range[0]
        if spec.range and spec.kind is int:
            assert desc.integer_range[0].step == spec.step


def test_mono_node_wiring(ros, ckpt, monkeypatch):
    monkeypatch.setattr(FakeNode, "overrides", {"checkpoint": str(ckpt), "device": "cpu"})
    node_mod = importlib.import_module("depth_kd_ros.mono_depth_node")
    node = node_mod.MonoDepthNode()
    _assert_declared(node, MONO_PARAMS)
    assert set(node.subs) == {"image", "camera_info"}
    for _, _, qos in node.subs.values():
        assert (qos.depth, qos.reliability) == (1, "best_effort")
    diagnostics = node.pubs.pop("/diagnostics")
    assert set(node.pubs) == {"depth", "depth/camera_info", "uncertainty", "depth/colorized"}
    assert all(p.qos.reliability == "reliable" for p in node.pubs.values())
    node.pubs["/diagnostics"] = diagnostics
    assert node.core.topic == "/ns/image"
    msg_type, on_image, _ = node.subs["image"]
    rgb = np.random.default_rng(0).integers(0, 256, (64, 192, 3), dtype=np.uint8)
    frame = image(10**18 - 10**6, **mc.image_fields(rgb, "rgb8"))
    node.subs["camera_info"][1](camera_info(1, 64, 192, fx=100.0))
    on_image(frame)  # nobody listens: skipped
    assert node.core.stats.skipped == 1 and not any(p.sent for p in node.pubs.values())
    node.pubs["depth"].subscribers = 1
    node.pubs["depth/camera_info"].subscribers = 1
    on_image(frame)
    assert [len(p.sent) for p in node.pubs.values()] == [1, 1, 0, 0, 0]
    assert node.pubs["depth"].sent[0].encoding == "32FC1"
    assert _diagnostic_names(node) == {"diagnostic_updater.period",
                                       "diagnostic_updater.use_fqn"}
    assert node.timers[0][0] == 1.0  # the updater's default period
    node.timers[0][1]()
    array = node.pubs["/diagnostics"].sent[0]
    stat = array.status[0]
    values = dict(stat.values)
    assert (stat.name, stat.level, stat.hardware_id) == ("mono_depth: mono depth", b"\x00",
                                                         "adu_student@cpu")
    assert values["frames_processed"] == "1"
    assert float(values["stamp_age_ms_mean"]) == pytest.approx(1.0)
    result = node.param_callbacks[0]([types.SimpleNamespace(name="output_scale", value=7.0)])
    assert not result.successful and "output_scale" in result.reason
    ok = node.param_callbacks[0]([types.SimpleNamespace(name="diagnostic_updater.period",
                                                        value=2.0)])
    assert ok.successful


def test_compressed_transport_subscribes_the_compressed_topic(ros, ckpt, monkeypatch):
    monkeypatch.setattr(FakeNode, "overrides", {"checkpoint": str(ckpt), "device": "cpu",
                                                "image_transport": "compressed",
                                                "use_camera_info": False})
    node = importlib.import_module("depth_kd_ros.mono_depth_node").MonoDepthNode()
    assert set(node.subs) == {"image/compressed"}
    assert node.subs["image/compressed"][0] is TS.types["sensor_msgs/msg/CompressedImage"]


def test_stereo_node_wiring(ros, ckpt, monkeypatch):
    monkeypatch.setattr(FakeNode, "overrides", {"student_checkpoint": str(ckpt),
                                                "device": "cpu", "sgbm_num_disparities": 16})
    node = importlib.import_module("depth_kd_ros.stereo_compare_node").StereoCompareNode()
    _assert_declared(node, STEREO_PARAMS)
    assert list(node.subs) == ["left/image_rect", "right/image_rect", "left/camera_info",
                               "right/camera_info"]
    assert (node.core.sync.queue_size, node.core.sync.slop_ns) == (10, 20_000_000)
    assert all(qos.depth == 1 for _, _, qos in node.subs.values())
    node.pubs.pop("/diagnostics")
    assert set(node.pubs) == {"student/depth", "teacher/depth", "abs_error", "metrics"}
    node.pubs["metrics"].subscribers = 1
    rgb = np.random.default_rng(1).integers(0, 256, (64, 192, 3), dtype=np.uint8)
    left = image(10**18, **mc.image_fields(rgb, "rgb8"))
    right = image(10**18, **mc.image_fields(np.roll(rgb, -4, axis=1), "rgb8"))
    calls = [node.subs[t][1] for t in node.subs]
    calls[0](left)
    calls[2](camera_info(10**18, 64, 192))
    calls[3](camera_info(10**18, 64, 192, tx=-5.0))
    assert not node.pubs["metrics"].sent  # the right image is still missing
    calls[1](right)
    sent = node.pubs["metrics"].sent
    assert len(sent) == 1 and sent[0].layout.dim[0].label == "abs_rel,rmse,delta1,frames"
    assert not node.pubs["teacher/depth"].sent  # nobody subscribed


def test_spin_exits_1_naming_the_node_on_a_bad_checkpoint_and_always_shuts_down(ros, capsys):
    import rclpy

    from depth_kd_core.errors import CheckpointError
    from depth_kd_ros.ros_glue import spin

    calls = []
    rclpy.try_shutdown = lambda: calls.append("shutdown")

    def bad_node():
        raise CheckpointError("checkpoint /x.pt: not found")

    assert spin(bad_node, "mono_depth_node") == 1
    assert "mono_depth_node: checkpoint /x.pt: not found" in capsys.readouterr().err
    assert calls == ["shutdown"]

    class Node:
        def destroy_node(self):
            calls.append("destroyed")

    def interrupted(node):
        raise KeyboardInterrupt

    rclpy.spin = interrupted
    assert spin(Node, "stereo_compare_node") == 0  # Ctrl-C is a clean stop
    assert calls == ["shutdown", "destroyed", "shutdown"]
