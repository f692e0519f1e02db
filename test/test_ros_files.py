"""ROS 2 files checked without ROS: parameter files, launch files and the RViz layout.

The parameter YAMLs hold exactly the declared parameters with valid values, parameter files are
validated with names at launch, the launch files declare the documented arguments with
descriptions and wire the topics the nodes use, and the RViz layout shows image, depth,
uncertainty and the point cloud.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from depth_kd_core.errors import ConfigError
from depth_kd_ros.mono_depth_core import OUTPUTS
from depth_kd_ros.params import (
    MONO_PARAMS,
    STEREO_PARAMS,
    ParamSpec,
    load_node_parameters,
    validate_params,
)

from conftest import REPO_ROOT

TABLES = [MONO_PARAMS, STEREO_PARAMS]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.node)
def test_config_yaml_holds_exactly_the_declared_parameters(table):
    data = yaml.safe_load((REPO_ROOT / "config" / f"{table.node}.yaml").read_text())
    assert list(data) == [table.node]
    params = data[table.node]["ros__parameters"]
    assert list(params) == [s.name for s in table.specs]  # same order as the table
    for spec in table.specs:  # rclpy refuses an int for a double parameter: types must match
        assert type(params[spec.name]) is spec.kind, spec.name
    assert validate_params(table, params) == params == table.defaults()


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.node)
def test_every_parameter_has_a_description_and_numbers_a_range(table):
    for spec in table.specs:
        assert len(spec.description) > 15, spec.name
        if spec.kind in (int, float):
            assert spec.range is not None, spec.name
        spec.validate(spec.default)


def test_parameter_file_loading_validates_and_overrides(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**/mono_depth:\n  ros__parameters:\n    output_scale: 0.5\n"
                    "    use_sim_time: true\n    diagnostic_updater:\n      period: 2.0\n")
    params = load_node_parameters(path, MONO_PARAMS, {"checkpoint": "/m.pt"})
    assert params == {"output_scale": 0.5, "checkpoint": "/m.pt", "use_sim_time": True,
                      "diagnostic_updater.period": 2.0}
    path.write_text("mono_depth:\n  ros__parameters:\n    output_scale: 3.0\n")
    with pytest.raises(ConfigError, match=r"p\.yaml \(mono_depth\).*'output_scale' = 3\.0"):
        load_node_parameters(path, MONO_PARAMS)
    path.write_text("mono_depth:\n  ros__parameters:\n    max_sigm: 1.0\n")
    with pytest.raises(ConfigError, match="unknown parameter.*max_sigm"):
        load_node_parameters(path, MONO_PARAMS)
    path.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ConfigError, match="no section for node 'mono_depth'"):
        load_node_parameters(path, MONO_PARAMS)
    stereo = load_node_parameters(REPO_ROOT / "config" / "stereo_compare.yaml", STEREO_PARAMS,
                                  {"teacher": "/t.pt"})
    assert stereo["teacher"] == "/t.pt" and stereo["sgbm_num_disparities"] == 128


def test_a_wrong_type_names_the_parameter():
    spec = ParamSpec("x", 1.0, "a double parameter for the test", range=(0.0, 2.0))
    assert spec.validate(1) == 1.0 and isinstance(spec.validate(1), float)
    with pytest.raises(ConfigError, match="'x' must be a float"):
        spec.validate("1.0")


def _launch_arguments(name: str) -> dict[str, tuple]:
    """ARGUMENTS of a launch file, read without importing launch (not installed here)."""
    tree = ast.parse((REPO_ROOT / "launch" / name).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "ARGUMENTS":
            return {a[0]: a[1:] for a in ast.literal_eval(node.value)}
    raise AssertionError(f"{name} has no ARGUMENTS")


def test_mono_launch_arguments_and_wiring():
    args = _launch_arguments("mono_depth.launch.py")
    for name in ("image_topic", "camera_info_topic", "params_file", "model_path", "rviz",
                 "pointcloud", "namespace"):
        assert name in args and len(args[name][1]) > 20, name
    assert args["rviz"][0] == "false" and args["pointcloud"][0] == "false"
    source = (REPO_ROOT / "launch" / "mono_depth.launch.py").read_text()
    assert 'plugin="depth_image_proc::PointCloudXyzNode"' in source
    for remap in ('("image_rect", f"{prefix}/depth")',
                  '("camera_info", f"{prefix}/depth/camera_info")', '("image", image)',
                  '("camera_info", arg("camera_info_topic"))'):
        assert remap in source, remap
    node_source = (REPO_ROOT / "depth_kd_ros" / "mono_depth_node.py").read_text()
    for topic in ('"image/compressed" if compressed else "image"', '"camera_info"'):
        assert topic in node_source
    assert set(OUTPUTS) == {"depth", "depth/camera_info", "uncertainty", "depth/colorized"}


def test_stereo_launch_arguments():
    args = _launch_arguments("stereo_compare.launch.py")
    for name in ("left_image_topic", "right_image_topic", "left_camera_info_topic",
                 "right_camera_info_topic", "params_file", "student_model_path", "teacher"):
        assert name in args and len(args[name][1]) > 20, name


def test_rviz_layout_shows_image_depth_uncertainty_and_points():
    data = yaml.safe_load((REPO_ROOT / "rviz" / "depth.rviz").read_text())
    displays = {d["Topic"]["Value"]: d["Class"] for d in data["Visualization Manager"]["Displays"]}
    assert displays == {"/camera/image_raw": "rviz_default_plugins/Image",
                        "/depth_kd/depth/colorized": "rviz_default_plugins/Image",
                        "/depth_kd/depth": "rviz_default_plugins/Image",
                        "/depth_kd/uncertainty": "rviz_default_plugins/Image",
                        "/depth_kd/points": "rviz_default_plugins/PointCloud2"}


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "launch").glob("*.launch.py"))
                         + sorted((REPO_ROOT / "depth_kd_ros").glob("*_node.py")))
def test_ros_sources_compile_and_keep_the_line_length(path: Path):
    source = path.read_text()
    compile(source, str(path), "exec")
    assert max(map(len, source.splitlines())) <= 99
