"""Small helpers shared by the bag tests: topic names and hand-made bags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.data.bags import codec as mc

TS = get_typestore(Stores.ROS2_HUMBLE)
STEREO = ("/stereo/left/image_rect", "/stereo/right/image_rect", "/stereo/left/camera_info",
          "/stereo/right/camera_info")
DEPTH = "/stereo/left/depth"


def header(ns: int) -> object:
    Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cam")


def image(ns: int, **fields) -> object:
    return TS.types["sensor_msgs/msg/Image"](header=header(ns), **fields)


def camera_info(ns: int, h: int, w: int, fx: float = 50.0, tx: float = 0.0) -> object:
    K = np.array([fx, 0, (w - 1) / 2, 0, fx, (h - 1) / 2, 0, 0, 1], np.float64)
    P = np.array([fx, 0, (w - 1) / 2, tx, 0, fx, (h - 1) / 2, 0, 0, 0, 1, 0], np.float64)
    roi = TS.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                       width=0, do_rectify=False)
    return TS.types["sensor_msgs/msg/CameraInfo"](
        header=header(ns), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
        k=K, r=np.eye(3).reshape(-1), p=P, binning_x=0, binning_y=0, roi=roi)


def rgb_image(ns: int, h: int, w: int, value: int = 100, **override) -> object:
    fields = mc.image_fields(np.full((h, w, 3), value, np.uint8), "rgb8")
    fields.update(override)
    return image(ns, **fields)


def write_bag(path: Path, messages: list[tuple[str, str, int, object]]) -> Path:
    """Write a small mcap rosbag2 from (topic, msgtype, log time ns, message) tuples."""
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            if msg is not None:  # None: the topic exists but has no messages
                writer.write(conns[topic], log_ns, TS.serialize_cdr(msg, msgtype))
    return path


def stereo_messages(n: int, h: int, w: int, *, right_h: int | None = None,
                    left_override: dict | None = None) -> list[tuple[str, str, int, object]]:
    """Make n synchronised stereo frames of flat images with matching CameraInfo."""
    out = []
    for k in range(n):
        ns = 10**18 + k * 100_000_000
        out += [(STEREO[0], "sensor_msgs/msg/Image", ns, rgb_image(ns, h, w, 10 * k,
                                                                   **(left_override or {}))),
                (STEREO[1], "sensor_msgs/msg/Image", ns, rgb_image(ns, right_h or h, w, 5)),
                (STEREO[2], "sensor_msgs/msg/CameraInfo", ns, camera_info(ns, h, w)),
                (STEREO[3], "sensor_msgs/msg/CameraInfo", ns,
                 camera_info(ns, h, w, tx=-50.0 * 0.5))]
    return out
