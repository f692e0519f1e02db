"""launch_testing: ``mono_depth.launch.py`` brings up a node that turns images into depth.

A published camera image becomes 32FC1 depth with the image's header (needs ROS 2 with
launch_testing and this package built with colcon and sourced; skipped otherwise).
"""

from __future__ import annotations

import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed: launch tests need ROS 2 "
                                    "(source /opt/ros/<distro>/setup.bash)")
pytest.importorskip("launch_testing", reason="launch_testing is not installed "
                                              "(ros-<distro>-launch-testing)")
ament_index = pytest.importorskip("ament_index_python.packages",
                                  reason="ament_index_python is not installed")
try:
    SHARE = Path(ament_index.get_package_share_directory("depth_kd_ros"))
except ament_index.PackageNotFoundError:
    pytest.skip("depth_kd_ros is not installed in a sourced colcon workspace "
                "(colcon build && source install/setup.bash)", allow_module_level=True)

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from depth_kd_core.data.bags import codec as mc  # noqa: E402
from depth_kd_core.data.bags.messages import image_msg, make_header  # noqa: E402
from depth_kd_ros.conversions import ros2_message_types  # noqa: E402

from inference_helpers import tiny_checkpoint  # noqa: E402

IMAGE_TOPIC = "/launch_test_cam/image_raw"
STAMP = (1_700_000_000, 5)


@pytest.mark.launch_test
def generate_test_description():
    """mono_depth.launch.py with a tiny checkpoint on a test camera topic."""
    ckpt = tiny_checkpoint(Path(tempfile.mkdtemp()) / "adu.pt")
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SHARE / "launch" / "mono_depth.launch.py")),
        launch_arguments={"model_path": str(ckpt), "image_topic": IMAGE_TOPIC,
                          "camera_info_topic": "/launch_test_cam/camera_info"}.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestMonoDepthLaunch(unittest.TestCase):
    """Active test while the launch runs."""

    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("mono_depth_launch_test")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_depth_follows_the_image(self) -> None:
        types = ros2_message_types()
        rgb = np.random.default_rng(0).integers(0, 256, (64, 192, 3), dtype=np.uint8)
        msg = image_msg(types, make_header(types, STAMP, "launch_cam"),
                           mc.image_fields(rgb, "rgb8"))
        pub = self.node.create_publisher(Image, IMAGE_TOPIC, 10)
        got = []
        self.node.create_subscription(Image, "/depth_kd/depth", got.append, 10)
        end = time.monotonic() + 90.0
        while not got and time.monotonic() < end:
            pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        self.assertTrue(got, "no depth on /depth_kd/depth within 90 s")
        depth = got[0]
        self.assertEqual((depth.encoding, depth.height, depth.width), ("32FC1", 64, 192))
        self.assertEqual((depth.header.stamp.sec, depth.header.stamp.nanosec), STAMP)
        self.assertEqual(depth.header.frame_id, "launch_cam")


@launch_testing.post_shutdown_test()
class TestMonoDepthShutdown(unittest.TestCase):
    """The node exits cleanly when the launch shuts down."""

    def test_exit_code(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
