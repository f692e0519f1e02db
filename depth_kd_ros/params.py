"""Node parameters as data, without ROS.

Each node's table (:class:`NodeParams`: its specs and the rules between them), the one
validation every user of the table calls, and reading a node's section of a ROS 2 parameter
file.

One table per node serves the rclpy node (``depth_kd_ros.ros_glue`` declares every spec with
a descriptor), the ROS-free core (validation at start-up and on run-time changes), the launch
files (the parameter file is validated before the node starts) and the tests (``config/*.yaml``
holds exactly these parameters with valid values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from depth_kd_core.errors import ConfigError
from depth_kd_core.visualize import COLORMAPS

Value = bool | int | float | str


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: parameter name.
        default: default value; its Python type is the parameter's type.
        description: what it does, with units.
        range: inclusive (low, high) for int/float parameters.
        step: int parameters only: allowed values are low, low + step, … (0 = any).
        choices: allowed values of a string parameter (None = free text).
        read_only: only settable at start-up (changing it needs a restart).
    """

    name: str
    default: Value
    description: str
    range: tuple[float, float] | None = None
    step: int = 0
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    @property
    def kind(self) -> type:
        """bool, int, float or str."""
        return type(self.default)

    def validate(self, value: Any) -> Value:
        """``value`` converted to this parameter's type; ConfigError naming it otherwise."""
        kind = self.kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # YAML "1" for a double is fine
        if type(value) is not kind:
            article = "an" if kind is int else "a"
            raise ConfigError(f"parameter '{self.name}' must be {article} {kind.__name__}, got "
                              f"{value!r} ({type(value).__name__})")
        if self.range is not None:
            low, high = self.range
            if not low <= value <= high:
                raise ConfigError(f"parameter '{self.name}' = {value} is outside "
                                  f"[{low}, {high}]")
            if self.step and (value - low) % self.step:
                raise ConfigError(f"parameter '{self.name}' = {value} must be {low} + a "
                                  f"multiple of {self.step}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"parameter '{self.name}' = {value!r}; choose one of "
                              f"{', '.join(map(repr, self.choices))}")
        return value

    def full_description(self) -> str:
        """Return the description plus the allowed values (shown by ``ros2 param describe``)."""
        extra = f" Choices: {', '.join(self.choices)}." if self.choices else ""
        return self.description + extra + (" (read-only: set at start-up)"
                                           if self.read_only else "")

    def expected(self) -> str:
        """Say what a value must be, for errors about values rclpy refused before we saw them."""
        text = {bool: "a bool (true/false)", int: "an integer", float: "a double (write 1.0, "
                "not 1)", str: "a string"}[self.kind]
        if self.range is not None:
            text += f" in [{self.range[0]}, {self.range[1]}]"
        if self.choices:
            text += f", one of {', '.join(self.choices)}"
        return text


@dataclass(frozen=True)
class LessThan:
    """Cross-parameter rule: ``low`` must be smaller than ``high`` (e.g. a depth range)."""

    low: str
    high: str

    def check(self, params: Mapping[str, Any]) -> None:
        """ConfigError naming both parameters unless params[low] < params[high]."""
        if not params[self.low] < params[self.high]:
            raise ConfigError(f"parameter '{self.low}' ({params[self.low]}) must be smaller "
                              f"than '{self.high}' ({params[self.high]})")


@dataclass(frozen=True)
class NodeParams:
    """One node's parameters.

    Attributes:
        node: the node's name, also the key of its section in a parameter file.
        specs: every parameter, in the order of ``config/<node>.yaml``.
        rules: checks between parameters, applied after each value passed its spec.
    """

    node: str
    specs: tuple[ParamSpec, ...]
    rules: tuple[LessThan, ...] = ()

    def defaults(self) -> dict[str, Value]:
        """{name: default}."""
        return {s.name: s.default for s in self.specs}


def validate_params(table: NodeParams, values: Mapping[str, Any],
                    partial: bool = False) -> dict[str, Value]:
    """Check ``values`` against ``table``.

    Names, types, ranges, steps, choices, then the cross-parameter rules on the defaults
    overlaid with ``values`` (what the node will run with).

    Returns:
        All parameters (defaults filled in), or only those in ``values`` when ``partial``
        (a parameter file: the node declares the defaults of the rest itself).

    Raises:
        ConfigError: one line naming the parameter (an unknown name, a wrong type, a value out
            of range or off its step, not one of the choices, a broken rule).
    """
    specs = {s.name: s for s in table.specs}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; declared: {sorted(specs)}")
    given = {name: specs[name].validate(value) for name, value in values.items()}
    merged = {**table.defaults(), **given}
    for rule in table.rules:
        rule.check(merged)
    return given if partial else merged


def validate_changes(table: NodeParams, current: Mapping[str, Any],
                     changes: Mapping[str, Any]) -> dict[str, Value]:
    """Apply run-time ``changes`` to ``current`` and validate the result as a whole.

    Raises:
        ConfigError: a read-only parameter changes, or :func:`validate_params` refuses the
            result; nothing is applied then.
    """
    fixed = sorted(s.name for s in table.specs if s.read_only and s.name in changes
                   and changes[s.name] != current[s.name])
    if fixed:
        raise ConfigError(f"parameter(s) {fixed} are read-only: restart the node to change "
                          f"them")
    return validate_params(table, {**current, **changes})


MONO_PARAMS = NodeParams("mono_depth", (
    ParamSpec("checkpoint", "", "Path of the depth_kd checkpoint (.pt) or exported network "
              "(.onnx: ONNX Runtime, .ts: TorchScript) to run (required).", read_only=True),
    ParamSpec("device", "", "Torch device: '' = CUDA when available else CPU; 'cpu', 'cuda', "
              "'cuda:1' ...", read_only=True),
    ParamSpec("fp16", False, "Half-precision inference (CUDA only; ignored on CPU).",
              read_only=True),
    ParamSpec("threads", 0, "CPU threads of torch and OpenCV in this process (0 = half the "
              "usable cores, at least 1). Fewer threads than cores keep latency flat when other "
              "processes share the CPU.", range=(0, 256), read_only=True),
    ParamSpec("image_transport", "raw", "Subscribe to 'image' (sensor_msgs/Image) or "
              "'image/compressed' (sensor_msgs/CompressedImage).", choices=("raw", "compressed"),
              read_only=True),
    ParamSpec("use_camera_info", True, "Subscribe to 'camera_info' for the camera's "
              "intrinsics (focal scaling and depth/camera_info).", read_only=True),
    ParamSpec("focal_scaling", True, "Scale depth and sigma by f_camera / f_training when the "
              "camera's intrinsics are known."),
    ParamSpec("output_scale", 1.0, "Size of the published depth as a fraction of the input "
              "image size; depth/camera_info K and P are scaled to match.", range=(0.05, 1.0)),
    ParamSpec("max_sigma", 0.0, "Publish depth as NaN where sigma exceeds this many metres "
              "(0 = no masking; needs a model that predicts sigma).", range=(0.0, 1000.0)),
    ParamSpec("publish_colorized", True, "Publish depth/colorized (bgr8)."),
    ParamSpec("colormap", "turbo", "Colour map of depth/colorized.",
              choices=tuple(COLORMAPS)),
    ParamSpec("colorize_min_depth", 1.0, "Nearest depth of the colour range, metres.",
              range=(0.01, 1000.0)),
    ParamSpec("colorize_max_depth", 80.0, "Farthest depth of the colour range, metres.",
              range=(0.1, 1000.0)),
    ParamSpec("diagnostics_window", 30, "Frames over which rate and latency are averaged.",
              range=(2, 1000), read_only=True),
), rules=(LessThan("colorize_min_depth", "colorize_max_depth"),))

STEREO_PARAMS = NodeParams("stereo_compare", (
    ParamSpec("student_checkpoint", "", "Path of the student's depth_kd checkpoint (.pt).",
              read_only=True),
    ParamSpec("teacher", "sgbm", "'sgbm' (OpenCV SGBM, no weights) or the path of a stereo "
              "teacher checkpoint (.pt).", read_only=True),
    ParamSpec("device", "", "Torch device: '' = CUDA when available else CPU; 'cpu', 'cuda' "
              "...", read_only=True),
    ParamSpec("fp16", False, "Half-precision network inference (CUDA only).", read_only=True),
    ParamSpec("threads", 0, "CPU threads of torch and OpenCV in this process (0 = half the "
              "usable cores, at least 1). Fewer threads than cores keep latency flat when other "
              "processes share the CPU.", range=(0, 256), read_only=True),
    ParamSpec("image_transport", "raw", "Subscribe to raw Images or their '/compressed' "
              "CompressedImage topics.", choices=("raw", "compressed"), read_only=True),
    ParamSpec("teacher_rate_hz", 2.0, "How often the teacher runs, by header stamp (Hz).",
              range=(0.01, 100.0)),
    ParamSpec("metrics_window", 50, "Teacher pairs averaged in the rolling metrics.",
              range=(1, 10000), read_only=True),
    ParamSpec("metrics_min_depth", 0.1, "Teacher depths below this (m) are not scored.",
              range=(0.001, 100.0)),
    ParamSpec("metrics_max_depth", 80.0, "Teacher depths above this (m) are not scored.",
              range=(0.1, 1000.0)),
    ParamSpec("focal_scaling", True, "Scale the student's depth by f_camera / f_training."),
    ParamSpec("sgbm_num_disparities", 128, "SGBM disparity search range, pixels (multiple "
              "of 16).", range=(16, 512), step=16, read_only=True),
    ParamSpec("sgbm_block_size", 5, "SGBM matching block size, pixels (odd).",
              range=(1, 31), step=2, read_only=True),
    ParamSpec("sync_queue_size", 10, "Messages per topic kept for pairing by stamp.",
              range=(1, 100), read_only=True),
    ParamSpec("sync_slop_s", 0.02, "Largest stamp difference within a synchronised set, s.",
              range=(0.0, 1.0), read_only=True),
    ParamSpec("diagnostics_window", 30, "Frames over which rate and latency are averaged.",
              range=(2, 1000), read_only=True),
), rules=(LessThan("metrics_min_depth", "metrics_max_depth"),))


# ------------------------------------------------------------------- ROS 2 parameter files

# Parameters every rclpy node (Humble/Jazzy) or its diagnostics understands besides its own
# table; names under ROS_PARAMETER_PREFIXES (per-topic QoS overrides) too.
ROS_PARAMETERS = ("use_sim_time", "start_type_description_service",
                  "diagnostic_updater.period", "diagnostic_updater.use_fqn")
ROS_PARAMETER_PREFIXES = ("qos_overrides.",)


def is_ros_parameter(name: str) -> bool:
    """Whether ``name`` belongs to rclpy or the diagnostics rather than the node's table."""
    return name in ROS_PARAMETERS or name.startswith(ROS_PARAMETER_PREFIXES)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten {"a": {"b": 1}} to {"a.b": 1}: nested YAML is how ROS 2 spells dotted names."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def node_section(data: Mapping[str, Any], node_name: str, source: str) -> dict[str, Any]:
    """Return the ``ros__parameters`` of ``node_name``, flattened to dotted names.

    The section may be keyed by the bare name, ``/ns/node`` or ``/**``.
    """
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


def load_node_parameters(params_file: str | Path, table: NodeParams,
                         overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load and validate the parameters of ``table.node`` from ``params_file``.

    ``overrides`` (launch arguments) are applied on top; the result is for
    ``launch_ros.actions.Node(parameters=[...])``.

    A section keyed by the bare node name applies in whatever namespace the node is launched,
    and a typo or a bad value fails at launch, not when the node starts.

    Returns:
        Only the parameters the file and the overrides set (the node declares the defaults
        of the rest), rclpy's own ones (:func:`is_ros_parameter`) passed through unchecked.

    Raises:
        ConfigError: naming the file, the node and the parameter.
    """
    path = Path(params_file)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of node names, got {type(data).__name__}")
    values = node_section(data, table.node, str(path))
    values.update(overrides or {})
    extra = {k: v for k, v in values.items() if is_ros_parameter(k)}
    ours = {k: v for k, v in values.items() if not is_ros_parameter(k)}
    try:
        checked = validate_params(table, ours, partial=True)
    except ConfigError as exc:
        raise ConfigError(f"{path} ({table.node}): {exc}") from exc
    return {**checked, **extra}
