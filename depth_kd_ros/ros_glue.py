"""rclpy glue shared by the nodes.

The only depth_kd_ros module besides the ``*_node.py`` files that imports rclpy: parameters
declared from a :class:`~depth_kd_ros.params.NodeParams` table (descriptors with ranges),
run-time parameter changes forwarded to a core, QoS profiles, the ``/diagnostics`` publisher
and the ``spin`` entry point.

Imports rclpy and message packages that install from PyPI (``ros-jazzy-rclpy`` ...) as well as
with ROS 2. ``diagnostic_updater`` (not on PyPI) is not needed: :class:`Diagnostics` publishes
``diagnostic_msgs`` itself, with the updater's topic, period parameter and status naming, so
both installs behave the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_system_default,
)

from depth_kd_core.errors import ConfigError, DepthKDError
from depth_kd_ros.frame_stats import DiagnosticSummary
from depth_kd_ros.params import NodeParams, ParamSpec

# REP 2003: camera subscriptions use sensor-data QoS; depth 1 drops stale frames instead of
# queueing them behind a slow network.
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
# REP 2003: publishers use the system default profile (reliable).
PUBLISHER_QOS = qos_profile_system_default
_LEVELS = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """ParameterDescriptor with description, range/step, choices and read-only flag."""
    desc = ParameterDescriptor(description=spec.full_description(), read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.range is not None and spec.kind is float:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)]
    elif spec.range is not None and spec.kind is int:
        desc.integer_range = [IntegerRange(from_value=int(spec.range[0]),
                                           to_value=int(spec.range[1]), step=int(spec.step))]
    return desc


def declare_parameters(node: Node, table: NodeParams) -> dict[str, Any]:
    """Declare every parameter of ``table`` (default, description, range); return the values.

    Raises:
        ConfigError: one line naming the parameter when a start-up value (``-p``, params
            file) has the wrong type or is out of range (rclpy's own exceptions otherwise
            end the process with a traceback).
    """
    values = {}
    for spec in table.specs:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                       descriptor(spec)).value
        except Exception as exc:  # noqa: BLE001 - rclpy's parameter exceptions share no base
            if isinstance(exc, DepthKDError):
                raise
            raise ConfigError(f"parameter '{spec.name}': {_first_line(exc)}; expected "
                              f"{spec.expected()}") from exc
    return values


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def forward_parameter_changes(node: Node, table: NodeParams,
                              apply: Callable[[dict[str, Any]], None]) -> None:
    """Send run-time changes of ``table``'s parameters to ``apply`` (a core's ``set_params``).

    A refused change (read-only, out of range, inconsistent) leaves everything as it was.
    """
    names = {s.name for s in table.specs}

    def on_set(params: list) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in names}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            apply(changes)
        except DepthKDError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def topic_label(node: Node, name: str) -> str:
    """Return the fully resolved name of ``name`` for log lines (the name itself on old rclpy)."""
    resolve = getattr(node, "resolve_topic_name", None)
    return resolve(name) if resolve is not None else name


class Diagnostics:
    """Publishes a node's status on ``/diagnostics`` as ``diagnostic_updater`` does.

    One ``diagnostic_msgs/DiagnosticArray`` status every ``diagnostic_updater.period`` seconds
    (default 1), named ``<node>: <task>`` (the fully qualified node name with
    ``diagnostic_updater.use_fqn``).

    Args:
        node: the node that publishes.
        task: status name after the node name.
        hardware_id: ``hardware_id`` of the status (model and device).
        summary: returns the core's current :class:`DiagnosticSummary`.
    """

    def __init__(self, node: Node, task: str, hardware_id: str,
                 summary: Callable[[], DiagnosticSummary]) -> None:
        self.node, self.task, self.hardware_id, self.summary = node, task, hardware_id, summary
        period = _declare(node, "diagnostic_updater.period", 1.0,
                          "Seconds between /diagnostics messages.")
        self.use_fqn = _declare(node, "diagnostic_updater.use_fqn", False,
                                "Name the status by the fully qualified node name.")
        self.pub = node.create_publisher(DiagnosticArray, "/diagnostics", 1)
        self.timer = node.create_timer(max(float(period), 0.01), self.publish)

    def status(self) -> DiagnosticStatus:
        """Build the current status message."""
        s = self.summary()
        name = self.node.get_fully_qualified_name() if self.use_fqn else self.node.get_name()
        return DiagnosticStatus(level=_LEVELS[s.level], name=f"{name}: {self.task}",
                                message=s.message, hardware_id=self.hardware_id,
                                values=[KeyValue(key=k, value=v) for k, v in s.values.items()])

    def publish(self) -> None:
        """Publish the current status now."""
        msg = DiagnosticArray(status=[self.status()])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(msg)


def _declare(node: Node, name: str, default: Any, description: str) -> Any:
    if node.has_parameter(name):
        return node.get_parameter(name).value
    try:
        return node.declare_parameter(name, default,
                                      ParameterDescriptor(description=description)).value
    except Exception as exc:  # noqa: BLE001 - rclpy's parameter exceptions share no base
        raise ConfigError(f"parameter '{name}': {_first_line(exc)}; expected a "
                          f"{type(default).__name__}") from exc


def spin(node_class: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Run one node until shutdown and return the exit status.

    0 on a clean stop or Ctrl-C, 1 (with the reason on stderr) when the node cannot start from
    its checkpoint or parameters.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except DepthKDError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
