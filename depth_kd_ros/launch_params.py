"""Parameter files for the launch files, without ROS: read the node's section of a ROS 2
parameter file (``<node>: ros__parameters: {...}``), validate it against the node's
:class:`~depth_kd_ros.params.ParamSpec` table and apply launch-argument overrides.

The launch files pass the result to ``launch_ros.actions.Node`` as a dict, so a section keyed
by the bare node name applies whatever namespace the node is launched in, and a typo or an
out-of-range value fails at launch with the file and parameter named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from depth_kd_core.errors import ConfigError
from depth_kd_ros.params import ParamSpec, validate_params

# Parameters every rclpy node (Humble/Jazzy) or its diagnostics understands besides its own
# table; names under ROS_PARAMETER_PREFIXES (per-topic QoS overrides) too.
ROS_PARAMETERS = ("use_sim_time", "start_type_description_service",
                  "diagnostic_updater.period", "diagnostic_updater.use_fqn")
ROS_PARAMETER_PREFIXES = ("qos_overrides.",)


def is_ros_parameter(name: str) -> bool:
    """Whether ``name`` belongs to rclpy or the diagnostics rather than the node's table."""
    return name in ROS_PARAMETERS or name.startswith(ROS_PARAMETER_PREFIXES)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: nested YAML is how ROS 2 spells dotted names."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def node_section(data: Mapping[str, Any], node_name: str, source: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` (bare, ``/ns/node`` or ``/**`` keys)."""
    for key in (node_name, f"/{node_name}", f"/**/{node_name}", "/**"):
        if key in data:
            break
    else:
        keys = [k for k in data if str(k).rstrip("/").endswith("/" + node_name)]
        if not keys:
            raise ConfigError(f"{source}: no section for node '{node_name}' (found "
                              f"{sorted(map(str, data))}); expected '{node_name}: "
                              f"ros__parameters: ...'")
        key = keys[0]
    section = data[key]
    if not isinstance(section, Mapping) or "ros__parameters" not in section:
        raise ConfigError(f"{source}: section '{key}' has no 'ros__parameters' mapping")
    return _flatten(section["ros__parameters"] or {})


def load_node_parameters(params_file: str | Path, node_name: str, specs: Iterable[ParamSpec],
                         overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validated parameters of ``node_name`` from ``params_file`` plus ``overrides``.

    Returns only the parameters the file and the overrides set (the node declares the
    defaults of the rest). Raises ConfigError naming the file and the parameter.
    """
    path = Path(params_file)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of node names, got {type(data).__name__}")
    values = node_section(data, node_name, str(path))
    values.update(overrides or {})
    extra = {k: v for k, v in values.items() if is_ros_parameter(k)}
    ours = {k: v for k, v in values.items() if not is_ros_parameter(k)}
    try:
        checked = validate_params(specs, ours, partial=True)
    except ConfigError as exc:
        raise ConfigError(f"{path} ({node_name}): {exc}") from exc
    return {**checked, **extra}
