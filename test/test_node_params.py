"""The node parameter tables and their one validation (``depth_kd_ros.params``).

Every kind of bad value is refused with one line naming the parameter, the cross-parameter
rules hold at start-up, at launch and on run-time changes, both node cores validate through it
(the same messages), and only the rclpy glue and the node files import rclpy.
"""

from __future__ import annotations

import ast
import logging
import types

import pytest

from depth_kd_core.errors import ConfigError
from depth_kd_ros.mono_depth_core import MonoDepthCore
from depth_kd_ros.params import (
    MONO_PARAMS,
    STEREO_PARAMS,
    LessThan,
    NodeParams,
    ParamSpec,
    load_node_parameters,
    validate_changes,
    validate_params,
)
from depth_kd_ros.stereo_compare_core import StereoCompareCore

from bag_helpers import TS
from conftest import REPO_ROOT

LOG = logging.getLogger("node_params_test")
TABLES = [MONO_PARAMS, STEREO_PARAMS]
# Every cross-parameter rule the nodes need, listed here by hand so that a rule dropped from a
# table turns test_cross_rule_* red: (table, smaller, larger).
CROSS_RULES = [(MONO_PARAMS, "colorize_min_depth", "colorize_max_depth"),
               (STEREO_PARAMS, "metrics_min_depth", "metrics_max_depth")]

SMALL = NodeParams("test_node", (
    ParamSpec("flag", True, "a bool parameter"),
    ParamSpec("count", 4, "an int parameter", range=(2, 10), step=2),
    ParamSpec("scale", 1.0, "a float parameter", range=(0.5, 2.0)),
    ParamSpec("mode", "a", "a string parameter", choices=("a", "b")),
    ParamSpec("near", 1.0, "near end of a range", range=(0.0, 100.0)),
    ParamSpec("far", 10.0, "far end of a range", range=(0.0, 100.0), read_only=True),
), rules=(LessThan("near", "far"),))


@pytest.mark.parametrize("name,value,message", [
    ("flag", 1, "parameter 'flag' must be a bool, got 1 (int)"),
    ("count", 4.0, "parameter 'count' must be an int, got 4.0 (float)"),
    ("count", 12, "parameter 'count' = 12 is outside [2, 10]"),
    ("count", 5, "parameter 'count' = 5 must be 2 + a multiple of 2"),
    ("scale", "1.0", "parameter 'scale' must be a float, got '1.0' (str)"),
    ("scale", float("nan"), "parameter 'scale' = nan is outside [0.5, 2.0]"),
    ("mode", "c", "parameter 'mode' = 'c'; choose one of 'a', 'b'"),
    ("modee", "a", "unknown parameter(s) ['modee']; declared: ['count', 'far', 'flag', "
                   "'mode', 'near', 'scale']"),
    ("near", 20.0, "parameter 'near' (20.0) must be smaller than 'far' (10.0)"),
])
def test_each_kind_of_bad_value_is_one_line_naming_the_parameter(name, value, message):
    with pytest.raises(ConfigError) as exc:
        validate_params(SMALL, {name: value})
    assert str(exc.value) == message


def test_good_values_are_converted_and_defaults_filled_in():
    assert validate_params(SMALL, {"scale": 2, "mode": "b"}) == {
        "flag": True, "count": 4, "scale": 2.0, "mode": "b", "near": 1.0, "far": 10.0}
    assert type(validate_params(SMALL, {"scale": 2})["scale"]) is float  # YAML 2 for 2.0
    assert validate_params(SMALL, {"count": 10}, partial=True) == {"count": 10}


def _bad_values(spec: ParamSpec) -> list[tuple[object, str]]:
    """(value, fragment of the message) for every way this spec can be broken."""
    wrong_type = {bool: 1, int: 1.5, float: "1.0", str: 3}[spec.kind]
    bad = [(wrong_type, "must be a")]
    if spec.range is not None:
        bad.append((spec.range[1] + 1, "is outside"))
        bad.append((spec.range[0] - 1, "is outside"))
    if spec.step:
        bad.append((spec.range[0] + 1, "multiple of"))
    if spec.choices:
        bad.append(("not-a-choice", "choose one of"))
    return bad


CASES = [(table, spec.name, value, fragment) for table in TABLES for spec in table.specs
         for value, fragment in _bad_values(spec)]


@pytest.mark.parametrize("table,name,value,fragment", CASES,
                         ids=[f"{t.node}.{n}={v!r}" for t, n, v, _ in CASES])
def test_every_node_parameter_refuses_bad_values_by_name(table, name, value, fragment):
    with pytest.raises(ConfigError) as exc:
        validate_params(table, {name: value})
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"parameter '{name}'") and fragment in text


@pytest.mark.parametrize("table,low,high", CROSS_RULES, ids=lambda x: getattr(x, "node", x))
def test_cross_rule_smaller_than_holds_at_start_up_launch_and_run_time(table, low, high,
                                                                       tmp_path):
    message = f"parameter '{low}' (50.0) must be smaller than '{high}' (50.0)"
    with pytest.raises(ConfigError) as exc:  # equal is refused too: an empty range
        validate_params(table, {low: 50.0, high: 50.0})
    assert str(exc.value) == message
    default_high = table.defaults()[high]
    with pytest.raises(ConfigError, match=f"'{low}' \\(90.0\\) must be smaller than "
                                          f"'{high}' \\({default_high}\\)"):
        validate_params(table, {low: 90.0}, partial=True)  # against the default it runs with
    path = tmp_path / "p.yaml"
    path.write_text(f"{table.node}:\n  ros__parameters:\n    {low}: 90.0\n")
    with pytest.raises(ConfigError, match=f"p\\.yaml \\({table.node}\\): parameter '{low}'"):
        load_node_parameters(path, table)
    current = validate_params(table, {})
    with pytest.raises(ConfigError, match=f"'{low}' \\(20.0\\) must be smaller than "
                                          f"'{high}' \\(10.0\\)"):
        validate_changes(table, current, {low: 20.0, high: 10.0})
    assert validate_changes(table, current, {low: 5.0, high: 6.0})[low] == 5.0


def test_run_time_changes_refuse_read_only_parameters_and_apply_nothing():
    current = validate_params(SMALL, {})
    with pytest.raises(ConfigError) as exc:
        validate_changes(SMALL, current, {"far": 20.0, "near": 2.0})
    assert str(exc.value) == ("parameter(s) ['far'] are read-only: restart the node to change "
                              "them")
    assert current == SMALL.defaults()
    assert validate_changes(SMALL, current, {"far": 10.0, "near": 2.0})["near"] == 2.0


def _mono_core(params: dict) -> MonoDepthCore:
    estimator = types.SimpleNamespace(focal_scaling=True)  # validation needs no network
    return MonoDepthCore(estimator, params, TS.types, LOG)


def _stereo_core(params: dict) -> StereoCompareCore:
    student, teacher = types.SimpleNamespace(focal_scaling=True), types.SimpleNamespace()
    return StereoCompareCore(student, teacher, params, TS.types, LOG)


CORES = [(MONO_PARAMS, _mono_core, MonoDepthCore), (STEREO_PARAMS, _stereo_core,
                                                     StereoCompareCore)]


@pytest.mark.parametrize("table,make,core_class", CORES, ids=["mono", "stereo"])
def test_both_cores_validate_with_the_shared_function_and_its_messages(table, make,
                                                                       core_class):
    low, high = next((lo, hi) for t, lo, hi in CROSS_RULES if t is table)
    bad_values = [{"diagnostics_window": 1}, {"threads": -1}, {"fp16": 1}, {"device": 3},
                  {"image_transport": "theora"}, {"nope": 1}, {low: 50.0, high: 50.0}]
    for bad in bad_values:
        with pytest.raises(ConfigError) as want:
            validate_params(table, bad)
        with pytest.raises(ConfigError) as at_start:
            make(bad)
        with pytest.raises(ConfigError) as from_params:
            core_class.from_params(bad, TS.types, LOG)
        assert str(at_start.value) == str(from_params.value) == str(want.value), bad
    core = make({})
    with pytest.raises(ConfigError) as exc:
        core.set_params({"device": "cuda"})
    assert str(exc.value) == ("parameter(s) ['device'] are read-only: restart the node to "
                              "change them")
    with pytest.raises(ConfigError, match=f"parameter '{low}' .* must be smaller than"):
        core.set_params({low: 90.0})
    assert core.params == validate_params(table, {})  # a refused change applies nothing
    core.set_params({"focal_scaling": False})
    assert core.params["focal_scaling"] is False


def _imports(path) -> set[str]:
    """Return what ``path`` imports, function-local imports included.

    Top-level packages, and depth_kd_ros modules by their full name.
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n.split(".")[0] if not n.startswith("depth_kd_ros") else n for n in names}


def test_only_the_rclpy_glue_and_the_node_files_import_rclpy():
    files = sorted((REPO_ROOT / "depth_kd_ros").glob("*.py"))
    rclpy_users = {p.stem for p in files if {"rclpy", "rcl_interfaces"} & _imports(p)}
    assert rclpy_users == {"ros_glue", "mono_depth_node", "stereo_compare_node"}
    glue_users = {p.stem for p in files if "depth_kd_ros.ros_glue" in _imports(p)}
    assert glue_users == {"mono_depth_node", "stereo_compare_node"}
