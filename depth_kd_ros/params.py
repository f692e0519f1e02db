"""Node parameters as data: one table per node, shared by the rclpy node (declarations with
descriptors), the ROS-free core (validation) and the config YAML files (tests check that
``config/*.yaml`` holds exactly these parameters with valid values).

No rclpy here; ``depth_kd_ros.ros_params`` turns a :class:`ParamSpec` into an rclpy
``ParameterDescriptor`` with its ``FloatingPointRange``/``IntegerRange``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from depth_kd_core.errors import ConfigError

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
            raise ConfigError(f"parameter '{self.name}' must be a {kind.__name__}, got "
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
        """Description plus the allowed values (shown by ``ros2 param describe``)."""
        extra = f" Choices: {', '.join(self.choices)}." if self.choices else ""
        return self.description + extra + (" (read-only: set at start-up)"
                                           if self.read_only else "")


def defaults(specs: Iterable[ParamSpec]) -> dict[str, Value]:
    """{name: default}."""
    return {s.name: s.default for s in specs}


def validate_params(specs: Iterable[ParamSpec], values: Mapping[str, Any],
                    partial: bool = False) -> dict[str, Value]:
    """Validated parameters: defaults overlaid with ``values`` (all of them unless partial).

    Raises:
        ConfigError: an unknown name, a wrong type or a value out of range.
    """
    table = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; declared: {sorted(table)}")
    out = {} if partial else defaults(table.values())
    out.update({k: table[k].validate(v) for k, v in values.items()})
    return out


def check_range_pair(params: Mapping[str, Any], low: str, high: str) -> None:
    """Require params[low] < params[high] (e.g. a colour range)."""
    if low in params and high in params and not params[low] < params[high]:
        raise ConfigError(f"parameter '{low}' ({params[low]}) must be smaller than "
                          f"'{high}' ({params[high]})")
