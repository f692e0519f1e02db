"""Writing bags: rosbag2 (mcap, sqlite3) and ROS 1 through one face.

REP 104 CameraInfo, and stereo frames (optionally as raw, distorted images) with depth topics.

The synthetic world is recorded with these (``synthetic/recording.py``); tests, the demo and
benchmarks write bags through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.camera import axis_angle_rotation, distort_to_raw

RECORD_LATENCY_NS = 2_000_000  # log time = header stamp + 2 ms, as a recorder would see it


@dataclass(frozen=True)
class BagTopics:
    """Topic names of a written bag (defaults = ``RosbagSourceCfg``)."""

    left: str = "/stereo/left/image_rect"
    right: str = "/stereo/right/image_rect"
    left_info: str = "/stereo/left/camera_info"
    right_info: str = "/stereo/right/camera_info"
    depth: str = "/stereo/left/depth"
    lidar: str = "/lidar/depth"


class RawRig(NamedTuple):
    """Distortion and rectifying rotations that make 'raw' images out of rectified ones."""

    D: tuple[float, ...] = (-0.12, 0.05, 0.0008, -0.0005, 0.0)  # plumb_bob k1 k2 p1 p2 k3
    left_angles: tuple[float, float, float] = (0.004, -0.006, 0.002)
    right_angles: tuple[float, float, float] = (-0.003, 0.005, -0.002)


class BagWriter:
    """Minimal common face of the rosbag2 and ROS 1 writers."""

    def __init__(self, path: Path, storage: str) -> None:
        self.ros1 = storage == "ros1"
        self.ts = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_HUMBLE)
        if self.ros1:
            self.writer: Any = Writer1(path)
        else:
            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self.writer = Writer2(path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.conns: dict[str, Any] = {}

    def header(self, stamp: int, frame_id: str) -> Any:
        Header = self.ts.types["std_msgs/msg/Header"]
        Time = self.ts.types["builtin_interfaces/msg/Time"]
        time = Time(sec=stamp // 10**9, nanosec=stamp % 10**9)
        return Header(seq=0, stamp=time, frame_id=frame_id) if self.ros1 else \
            Header(stamp=time, frame_id=frame_id)

    def write(self, topic: str, msgtype: str, log_ns: int, **fields: Any) -> None:
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.ts)
        msg = self.ts.types[msgtype](**fields)
        raw = (self.ts.serialize_ros1 if self.ros1 else self.ts.serialize_cdr)(msg, msgtype)
        self.writer.write(self.conns[topic], log_ns, raw)

    def close(self) -> None:
        self.writer.close()


def camera_info_fields(bag: BagWriter, hdr: Any, K: np.ndarray, h: int, w: int,
                       D: np.ndarray, R: np.ndarray, P: np.ndarray) -> dict[str, Any]:
    """CameraInfo field values in the spelling of ``bag``'s ROS version (``d`` or ``D`` …)."""
    roi = bag.ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    names = ("D", "K", "R", "P") if bag.ros1 else ("d", "k", "r", "p")
    mats = dict(zip(names, (D, K.reshape(-1), R.reshape(-1), P.reshape(-1))))
    mats = {k: np.asarray(v, dtype=np.float64) for k, v in mats.items()}
    return dict(header=hdr, height=h, width=w, distortion_model="plumb_bob", binning_x=0,
                binning_y=0, roi=roi, **mats)


def _image_fields(rgb: np.ndarray, compressed: bool | str, encoding: str, quality: int) -> dict:
    if compressed:
        fmt = "png" if compressed == "png" else "jpeg"
        return mc.compressed_fields(rgb, fmt, encoding="rgb8", quality=quality)
    converted = {"rgb8": rgb, "bgr8": rgb[..., ::-1],
                 "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)}[encoding]
    return mc.image_fields(np.ascontiguousarray(converted), encoding)


def rig_matrices(K: np.ndarray, B: float, raw: RawRig | None) -> dict[str, np.ndarray]:
    """CameraInfo matrices of the left and right cameras."""
    P_left = np.hstack([K, np.zeros((3, 1))])
    P_right = P_left.copy()
    P_right[0, 3] = -K[0, 0] * B  # REP 104: Tx = -fx * B
    if raw is None:
        zero, eye = np.zeros(5), np.eye(3)
        return {"D": zero, "R_left": eye, "R_right": eye, "P_left": P_left, "P_right": P_right,
                "raw": False}
    return {"D": np.asarray(raw.D, np.float64), "R_left": axis_angle_rotation(*raw.left_angles),
            "R_right": axis_angle_rotation(*raw.right_angles), "P_left": P_left,
            "P_right": P_right, "raw": True}


def write_frame(bag: BagWriter, frame: dict, stamp: int, right_delay_ns: int, topics: BagTopics,
                rig: dict, size: tuple[int, int], compressed: bool | str, encoding: str,
                quality: int, stereo: bool, with_depth: bool, depth_encoding: str,
                with_lidar: bool) -> None:
    """Record one frame: images and CameraInfo of each side, then the depth topics.

    ``frame`` holds ``K`` and H x W arrays ``left`` (``right``) uint8 RGB, ``depth`` and
    ``lidar_depth`` float32 metres, rectified (a synthetic world frame); with ``rig["raw"]``
    images and depth are distorted to raw pixels first. Log times are the header stamps plus
    ``RECORD_LATENCY_NS``.
    """
    h, w = size
    K = frame["K"]
    image_type = ("sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image")
    sides = [("left", stamp)] + ([("right", stamp + right_delay_ns)] if stereo else [])
    for side, t in sides:
        hdr = bag.header(t, f"camera_{side}")
        R, P = rig[f"R_{side}"], rig[f"P_{side}"]
        rgb = frame[side]
        if rig["raw"]:
            rgb = distort_to_raw(rgb, K, rig["D"], R, P[:, :3])
        bag.write(getattr(topics, side), image_type, t + RECORD_LATENCY_NS, header=hdr,
                  **_image_fields(rgb, compressed, encoding, quality))
        bag.write(getattr(topics, f"{side}_info"), "sensor_msgs/msg/CameraInfo",
                  t + RECORD_LATENCY_NS, **camera_info_fields(bag, hdr, K, h, w, rig["D"], R, P))
    for wanted, topic, key, enc in ((with_depth, topics.depth, "depth", depth_encoding),
                                    (with_lidar, topics.lidar, "lidar_depth", "32FC1")):
        if wanted:
            depth = frame[key]
            if rig["raw"]:
                depth = distort_to_raw(depth, K, rig["D"], rig["R_left"], rig["P_left"][:, :3],
                                       nearest=True)
            bag.write(topic, "sensor_msgs/msg/Image", stamp + RECORD_LATENCY_NS,
                      header=bag.header(stamp, "camera_left"), **mc.depth_image_fields(depth, enc))
