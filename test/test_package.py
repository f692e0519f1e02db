"""Packaging: ament_python manifest, README set-up commands, CI entry point."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

from conftest import REPO_ROOT


def test_package_xml_is_format_3_ament_python_with_runtime_deps():
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "depth_kd_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces",
                "builtin_interfaces", "cv_bridge", "launch_ros", "python3-opencv"):
        assert dep in deps, dep
    assert (REPO_ROOT / "resource" / "depth_kd_ros").is_file()


def test_package_xml_is_truthful_about_ros_python_imports():
    """Every ROS package the node code imports is an exec_depend, and only those.

    None that it does not import is listed among the Python ones (message_filters,
    diagnostic_updater).
    """
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    deps = {e.text for e in root.findall("exec_depend")}
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "depth_kd_ros").glob("*.py"))
    imported = set(re.findall(r"^\s*(?:from|import)\s+([a-z_]+)", source, flags=re.M))
    ros = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces",
           "builtin_interfaces", "cv_bridge", "message_filters", "diagnostic_updater"}
    assert imported & ros <= deps
    assert not {"message_filters", "diagnostic_updater"} & (deps - imported)


def test_ros_pip_extra_has_the_wheels_the_nodes_import_and_ci_installs_it():
    setup = (REPO_ROOT / "setup.py").read_text()
    extra = setup.split('"ros-pip":', 1)[1].split("}", 1)[0]
    for wheel in ("ros-jazzy-rclpy[fastrtps", "ros-jazzy-sensor-msgs", "ros-jazzy-std-msgs",
                  "ros-jazzy-diagnostic-msgs", "ros-jazzy-rcl-interfaces",
                  "ros-jazzy-builtin-interfaces"):
        assert wheel in extra, wheel
    assert "'.[test,ros-pip]'" in (REPO_ROOT / ".ci" / "run").read_text()


def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [c.strip() for c in re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    main_cmd, test_cmd = commands
    assert "depth_kd_core.demo" in main_cmd and "pytest" in test_cmd
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == test_cmd


def test_core_never_imports_ros():
    banned = re.compile(r"^\s*(import|from)\s+(rclpy|cv_bridge|message_filters|launch|"
                        r"sensor_msgs|std_msgs|depth_kd_ros)\b", re.M)
    offenders = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "depth_kd_core").rglob("*.py")
                 if banned.search(p.read_text())]
    assert offenders == []


def test_setup_ships_every_folder_of_python_modules():
    """Every folder of Python modules is a package that setup.py's include finds.

    find_packages skips a folder without ``__init__.py`` silently: every folder holding
    modules (data/bags, data/synthetic …) must be a package.
    """
    from setuptools import find_packages

    setup_text = (REPO_ROOT / "setup.py").read_text()
    include = ast.literal_eval(re.search(r"find_packages\(include=(\[.*?\])\)", setup_text,
                                         flags=re.S)[1])
    shipped = set(find_packages(str(REPO_ROOT), include=include))
    folders = {".".join(p.parent.relative_to(REPO_ROOT).parts)
               for top in ("depth_kd_core", "depth_kd_ros")
               for p in (REPO_ROOT / top).rglob("*.py")}
    assert folders <= shipped
    assert {"depth_kd_core.data.bags", "depth_kd_core.data.synthetic"} <= shipped
