r"""``stereo_compare_node``: the distilled student beside its stereo teacher, online (rclpy glue).

Subscribes ``left/image_rect``, ``right/image_rect`` (or their ``/compressed`` topics by the
``image_transport`` parameter), ``left/camera_info`` and ``right/camera_info`` with
sensor-data QoS of depth 1, paired by header stamp in the core (approximate time,
``sync_queue_size``, ``sync_slop_s``; no message_filters needed). Publishes
``student/depth``, ``teacher/depth``, ``abs_error`` and ``metrics`` (reliable, REP 2003) and
``/diagnostics``. Every decision lives
in :class:`depth_kd_ros.stereo_compare_core.StereoCompareCore`.

    ros2 run depth_kd_ros stereo_compare_node --ros-args \
        -p student_checkpoint:=/path/best.pt -p teacher:=sgbm -r left/image_rect:=/stereo/...
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32MultiArray

from depth_kd_ros.conversions import ros2_message_types
from depth_kd_ros.params import STEREO_PARAMS
from depth_kd_ros.ros_glue import (
    PUBLISHER_QOS,
    SENSOR_QOS,
    Diagnostics,
    declare_parameters,
    forward_parameter_changes,
    spin,
    topic_label,
)
from depth_kd_ros.stereo_compare_core import (
    ABS_ERROR,
    METRICS,
    STUDENT,
    TEACHER,
    StereoCompareCore,
)

OUTPUT_TYPES = {STUDENT: Image, TEACHER: Image, ABS_ERROR: Image, METRICS: Float32MultiArray}


class StereoCompareNode(Node):
    """Thin rclpy shell around :class:`StereoCompareCore`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(STEREO_PARAMS.node, **kwargs)
        params = declare_parameters(self, STEREO_PARAMS)
        compressed = params["image_transport"] == "compressed"
        suffix, image_cls = ("/compressed", CompressedImage) if compressed else ("", Image)
        self.core = StereoCompareCore.from_params(
            params, ros2_message_types(), self.get_logger(),
            topic=topic_label(self, "left/image_rect" + suffix))
        self.pubs = {name: self.create_publisher(cls, name, PUBLISHER_QOS)
                     for name, cls in OUTPUT_TYPES.items()}
        topics = [f"left/image_rect{suffix}", f"right/image_rect{suffix}",
                  "left/camera_info", "right/camera_info"]
        for index, (topic, cls) in enumerate(zip(topics, [image_cls, image_cls, CameraInfo,
                                                          CameraInfo])):
            self.create_subscription(cls, topic, lambda msg, i=index: self.on_message(i, msg),
                                     SENSOR_QOS)
        self.diagnostics = Diagnostics(
            self, "stereo compare", f"{self.core.student.name}+{self.core.teacher.name}",
            self.core.diagnostics)
        forward_parameter_changes(self, STEREO_PARAMS, self.core.set_params)

    def on_message(self, index: int, msg) -> None:
        """Hand one message to the core's stamp pairing.

        What a completed pair gives is published to somebody who listens.
        """
        wanted = [name for name, pub in self.pubs.items() if pub.get_subscription_count() > 0]
        now_ns = self.get_clock().now().nanoseconds
        for name, out in self.core.on_message(index, msg, wanted, now_ns).items():
            self.pubs[name].publish(out)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run depth_kd_ros stereo_compare_node``."""
    return spin(StereoCompareNode, "stereo_compare_node", args)


if __name__ == "__main__":
    sys.exit(main())
