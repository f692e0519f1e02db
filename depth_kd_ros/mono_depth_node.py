r"""``mono_depth_node``: monocular metric depth and uncertainty on a camera topic (rclpy wiring).

Subscribes ``image`` (sensor_msgs/Image) or ``image/compressed`` (CompressedImage) by the
``image_transport`` parameter, and ``camera_info`` unless ``use_camera_info`` is false, with
sensor-data QoS of depth 1. Publishes ``depth``, ``depth/camera_info``, ``uncertainty`` and
``depth/colorized`` (reliable, REP 2003) and ``/diagnostics``. Every decision lives in
:class:`depth_kd_ros.mono_depth_core.MonoDepthCore` (see its docstring for the outputs);
this file only connects it to ROS 2.

    ros2 run depth_kd_ros mono_depth_node --ros-args -p checkpoint:=/path/best.pt \
        -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from depth_kd_ros.conversions import ros2_message_types
from depth_kd_ros.mono_depth_core import COLORIZED, DEPTH, DEPTH_INFO, UNCERTAINTY, MonoDepthCore
from depth_kd_ros.params import MONO_PARAMS
from depth_kd_ros.ros_glue import (
    PUBLISHER_QOS,
    SENSOR_QOS,
    Diagnostics,
    declare_parameters,
    forward_parameter_changes,
    spin,
    topic_label,
)

OUTPUT_TYPES = {DEPTH: Image, DEPTH_INFO: CameraInfo, UNCERTAINTY: Image, COLORIZED: Image}


class MonoDepthNode(Node):
    """Thin rclpy shell around :class:`MonoDepthCore`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(MONO_PARAMS.node, **kwargs)
        params = declare_parameters(self, MONO_PARAMS)
        compressed = params["image_transport"] == "compressed"
        image_topic = "image/compressed" if compressed else "image"
        self.core = MonoDepthCore.from_params(
            params, ros2_message_types(), self.get_logger(),
            topic=topic_label(self, image_topic))
        self.pubs = {name: self.create_publisher(cls, name, PUBLISHER_QOS)
                     for name, cls in OUTPUT_TYPES.items()}
        self.create_subscription(CompressedImage if compressed else Image, image_topic,
                                 self.on_image, SENSOR_QOS)
        if params["use_camera_info"]:
            self.create_subscription(CameraInfo, "camera_info", self.core.on_camera_info,
                                     SENSOR_QOS)
        self.diagnostics = Diagnostics(
            self, "mono depth", f"{self.core.estimator.name}@{self.core.estimator.device}",
            self.core.diagnostics)
        forward_parameter_changes(self, MONO_PARAMS, self.core.set_params)

    def on_image(self, msg: Image | CompressedImage) -> None:
        """Run the core for the outputs somebody subscribes to and publish them."""
        wanted = [name for name, pub in self.pubs.items() if pub.get_subscription_count() > 0]
        now_ns = self.get_clock().now().nanoseconds
        for name, out in self.core.on_image(msg, wanted, now_ns).items():
            self.pubs[name].publish(out)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run depth_kd_ros mono_depth_node``."""
    return spin(MonoDepthNode, "mono_depth_node", args)


if __name__ == "__main__":
    sys.exit(main())
