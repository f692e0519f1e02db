"""Message building for the nodes and the bag tools, without rclpy: numpy -> sensor_msgs.

Builds messages for either message flavour from a *types* mapping
(``"sensor_msgs/msg/Image" -> class``): the ``rosbags`` typestore's ``ts.types`` (tests,
bag writing) or ``depth_kd_ros.conversions.ros2_message_types()`` (the rclpy nodes). rclpy's
generated classes want ``array.array`` for ``uint8[]``/``float64[]``/``float32[]``
sequences, not numpy arrays; :func:`make_msg` converts field values by the class's declared
field types. Decoding lives in :mod:`depth_kd_core.data.bags.codec`.
"""

from __future__ import annotations

import array
from collections.abc import Mapping
from typing import Any

import numpy as np

from depth_kd_core.data.camera import CameraCalibration
from depth_kd_core.errors import ImageError

Types = Mapping[str, Any]
IMAGE, COMPRESSED, CAMERA_INFO = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                                  "sensor_msgs/msg/CameraInfo")
HEADER, TIME, ROI = "std_msgs/msg/Header", "builtin_interfaces/msg/Time", \
    "sensor_msgs/msg/RegionOfInterest"
FLOAT_ARRAY = "std_msgs/msg/Float32MultiArray"
_ARRAY_CODES = {"sequence<uint8>": ("B", np.uint8), "sequence<double>": ("d", np.float64),
                "sequence<float>": ("f", np.float32)}


def is_rclpy_class(cls: type) -> bool:
    """rosidl-generated (rclpy) message classes describe their fields; rosbags' do not."""
    return hasattr(cls, "get_fields_and_field_types")


def _adapt(value: Any, field_type: str) -> Any:
    """Convert a numpy field value to the form rclpy's setters accept for ``field_type``."""
    if field_type in _ARRAY_CODES and not isinstance(value, array.array):
        code, dtype = _ARRAY_CODES[field_type]
        if isinstance(value, (bytes, bytearray, memoryview)) and code == "B":
            return array.array(code, value)
        return array.array(code, np.ascontiguousarray(value, dtype=dtype).tobytes())
    if isinstance(value, np.ndarray) and field_type.startswith("double["):
        return np.asarray(value, dtype=np.float64).reshape(-1)
    return value


def make_msg(types: Types, typename: str, **fields: Any) -> Any:
    """Build ``typename`` from the types mapping with every field given.

    numpy values are converted for rclpy classes (``array.array`` for sequences); rosbags
    classes take them as they are.
    """
    cls = types[typename]
    if not is_rclpy_class(cls):
        return cls(**fields)
    declared = cls.get_fields_and_field_types()
    fields = {k: _adapt(v, declared.get(k, "")) for k, v in fields.items()}
    # rclpy's constructors copy array.array sequences; their setters take them as they are
    arrays = {k: fields.pop(k) for k in list(fields) if isinstance(fields[k], array.array)}
    msg = cls(**fields)
    for key, value in arrays.items():
        setattr(msg, key, value)
    return msg


def make_header(types: Types, stamp: tuple[int, int], frame_id: str) -> Any:
    """ROS 2 Header from (sec, nanosec) and a frame id."""
    time = make_msg(types, TIME, sec=int(stamp[0]), nanosec=int(stamp[1]))
    return make_msg(types, HEADER, stamp=time, frame_id=str(frame_id))


def copy_header(types: Types, header: Any) -> Any:
    """Make a ROS 2 Header with the stamp and frame of ``header`` (ROS 1 or ROS 2 message)."""
    return make_header(types, (header.stamp.sec, header.stamp.nanosec), header.frame_id)


def image_msg(types: Types, header: Any, fields: dict[str, Any]) -> Any:
    """sensor_msgs/Image from ``codec`` field values (``image_fields`` and friends)."""
    return make_msg(types, IMAGE, header=header, **fields)


def _pixels_msg(types: Types, header: Any, arr: np.ndarray, encoding: str) -> Any:
    """Make an Image of a C-contiguous H x W (x C) array whose dtype matches ``encoding``.

    The array is copied once: rclpy classes get its bytes in one ``array.array``, rosbags
    classes a flat view.
    """
    h, w = arr.shape[:2]
    flat = arr.reshape(-1).view(np.uint8)
    if is_rclpy_class(types[IMAGE]):
        data = array.array("B")
        data.frombytes(memoryview(flat))
    else:
        data = flat.copy()
    return make_msg(types, IMAGE, header=header, height=h, width=w, encoding=encoding,
                    is_bigendian=0, step=arr.strides[0], data=data)


def depth_msg(types: Types, header: Any, depth_m: np.ndarray) -> Any:
    """32FC1 Image in metres with NaN where invalid (REP 118); step = 4 * width.

    ``depth_m``: (H, W) metres; NaN, <= 0 and +-inf are invalid.
    """
    depth = np.ascontiguousarray(depth_m, dtype=np.float32)
    # all valid (the usual network output): two reductions instead of per-pixel masks; NaN
    # propagates through min, so any NaN takes the masking branch
    if not (depth.size and depth.min() > 0 and depth.max() < np.inf):
        bad = ~(depth > 0) | (depth == np.inf)  # NaN compares False: already invalid
        depth = np.where(bad, np.float32(np.nan), depth)
    if not np.little_endian:  # 32FC1 is written little-endian (is_bigendian = 0)
        depth = depth.astype("<f4")
    return _pixels_msg(types, header, depth, "32FC1")


def bgr8_msg(types: Types, header: Any, bgr: np.ndarray) -> Any:
    """bgr8 Image from an H x W x 3 uint8 BGR array."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ImageError(f"bgr8 needs an H x W x 3 uint8 array, got {bgr.dtype} {bgr.shape}")
    return _pixels_msg(types, header, np.ascontiguousarray(bgr), "bgr8")


def camera_info_msg(types: Types, header: Any, calib: CameraCalibration) -> Any:
    """sensor_msgs/CameraInfo (ROS 2 field names) for ``calib``; binning 0, no ROI."""
    roi = make_msg(types, ROI, x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return make_msg(types, CAMERA_INFO, header=header, height=int(calib.height),
                    width=int(calib.width), distortion_model=calib.distortion_model,
                    d=np.asarray(calib.D, np.float64).reshape(-1),
                    k=np.asarray(calib.K, np.float64).reshape(-1),
                    r=np.asarray(calib.R, np.float64).reshape(-1),
                    p=np.asarray(calib.P, np.float64).reshape(-1),
                    binning_x=0, binning_y=0, roi=roi)


def float_array_msg(types: Types, labels: str, values: list[float]) -> Any:
    """std_msgs/Float32MultiArray, one dimension whose label lists the entries."""
    dim = make_msg(types, "std_msgs/msg/MultiArrayDimension", label=labels, size=len(values),
                   stride=len(values))
    layout = make_msg(types, "std_msgs/msg/MultiArrayLayout", dim=[dim], data_offset=0)
    return make_msg(types, FLOAT_ARRAY, layout=layout,
                    data=np.asarray(values, dtype=np.float32))
