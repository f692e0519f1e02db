"""``stereo_compare_node``: the distilled student beside its stereo teacher, online
(rclpy wiring).

Subscribes ``left/image_rect``, ``right/image_rect`` (or their ``/compressed`` topics by the
``image_transport`` parameter), ``left/camera_info`` and ``right/camera_info`` with
sensor-data QoS of depth 1, synchronised by message_filters' ApproximateTimeSynchronizer
(``sync_queue_size``, ``sync_slop_s``). Publishes ``student/depth``, ``teacher/depth``,
``abs_error`` and ``metrics`` (reliable, REP 2003) and ``/diagnostics``. Every decision lives
in :class:`depth_kd_ros.stereo_compare_core.StereoCompareCore`.

    ros2 run depth_kd_ros stereo_compare_node --ros-args \
        -p student_checkpoint:=/path/best.pt -p teacher:=sgbm -r left/image_rect:=/stereo/...
"""

from __future__ import annotations

import sys

from diagnostic_updater import Updater
from message_filters import ApproximateTimeSynchronizer, Subscriber
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32MultiArray

from depth_kd_ros.conversions import ros2_message_types
from depth_kd_ros.ros_params import (PUBLISHER_QOS, SENSOR_QOS, declare_parameters,
                                     fill_status, forward_parameter_changes, spin,
                                     topic_label)
from depth_kd_ros.stereo_compare_core import (ABS_ERROR, METRICS, STEREO_PARAMS, STUDENT,
                                              TEACHER, StereoCompareCore)

OUTPUT_TYPES = {STUDENT: Image, TEACHER: Image, ABS_ERROR: Image, METRICS: Float32MultiArray}


class StereoCompareNode(Node):
    """Thin rclpy shell around :class:`StereoCompareCore`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("stereo_compare", **kwargs)
        params = declare_parameters(self, STEREO_PARAMS)
        compressed = params["image_transport"] == "compressed"
        suffix, image_cls = ("/compressed", CompressedImage) if compressed else ("", Image)
        self.core = StereoCompareCore.from_params(
            params, ros2_message_types(), self.get_logger(),
            topic=topic_label(self, "left/image_rect" + suffix))
        self.pubs = {name: self.create_publisher(cls, name, PUBLISHER_QOS)
                     for name, cls in OUTPUT_TYPES.items()}
        self.filters = [Subscriber(self, image_cls, f"{side}/image_rect{suffix}",
                                   qos_profile=SENSOR_QOS) for side in ("left", "right")]
        self.filters += [Subscriber(self, CameraInfo, f"{side}/camera_info",
                                    qos_profile=SENSOR_QOS) for side in ("left", "right")]
        self.sync = ApproximateTimeSynchronizer(self.filters, params["sync_queue_size"],
                                                params["sync_slop_s"])
        self.sync.registerCallback(self.on_pair)
        self.updater = Updater(self)
        self.updater.setHardwareID(f"{self.core.student.name}+{self.core.teacher.name}")
        self.updater.add("stereo compare",
                         lambda stat: fill_status(stat, self.core.diagnostics()))
        forward_parameter_changes(self, STEREO_PARAMS, self.core.set_params)

    def on_pair(self, left, right, left_info: CameraInfo, right_info: CameraInfo) -> None:
        """Run the core on one synchronised set and publish what somebody listens to."""
        wanted = [name for name, pub in self.pubs.items() if pub.get_subscription_count() > 0]
        now_ns = self.get_clock().now().nanoseconds
        for name, out in self.core.on_pair(left, right, left_info, right_info, wanted,
                                           now_ns).items():
            self.pubs[name].publish(out)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run depth_kd_ros stereo_compare_node``."""
    return spin(StereoCompareNode, "stereo_compare_node", args)


if __name__ == "__main__":
    sys.exit(main())
