"""rclpy glue shared by the nodes: parameter declarations from :class:`ParamSpec` tables,
run-time parameter changes forwarded to a core, QoS profiles, diagnostics levels.

Imports rclpy: used only by ``mono_depth_node`` and ``stereo_compare_node``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import rclpy

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_system_default)

from depth_kd_core.errors import DepthKDError
from depth_kd_ros.frame_stats import DiagnosticSummary
from depth_kd_ros.params import ParamSpec

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


def declare_parameters(node: Node, specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """Declare every parameter (default, description, range) and return their values."""
    return {s.name: node.declare_parameter(s.name, s.default, descriptor(s)).value
            for s in specs}


def forward_parameter_changes(node: Node, specs: Iterable[ParamSpec],
                              apply: Callable[[dict[str, Any]], None]) -> None:
    """Send run-time changes of our parameters to ``apply`` (a core's ``set_params``);
    a refused change (read-only, out of range, inconsistent) leaves everything as it was."""
    names = {s.name for s in specs}

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
    """The fully resolved name of ``name`` for log lines (the name itself on old rclpy)."""
    resolve = getattr(node, "resolve_topic_name", None)
    return resolve(name) if resolve is not None else name


def fill_status(stat: Any, summary: DiagnosticSummary) -> Any:
    """Copy a core's summary into a diagnostic_updater DiagnosticStatusWrapper."""
    stat.summary(_LEVELS[summary.level], summary.message)
    for key, value in summary.values.items():
        stat.add(key, value)
    return stat


def spin(node_class: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Run one node until shutdown; 0 on a clean stop or Ctrl-C, 1 (with the reason on stderr)
    when the node cannot start from its checkpoint or parameters."""
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
