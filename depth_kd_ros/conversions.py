"""The node-side face of ``depth_kd_core.data.msg_codec``: messages <-> numpy, no rclpy.

Decoding goes through the one codec (``msg_codec``) for every encoding it knows (rgb8, bgr8,
rgba8, bgra8, mono8, mono16, bayer_*, 16UC1, 32FC1, yuv422 …), honouring ``step`` (row
padding) and ``is_bigendian``; anything malformed raises
:class:`~depth_kd_core.errors.ImageError` (a ``DepthKDError``) naming the field. When
``cv_bridge`` is installed, raw images whose rows are unpadded and in host byte order are
decoded by ``CvBridge.imgmsg_to_cv2(msg, "passthrough")`` (what ROS users expect); padded or
byte-swapped images, which some cv_bridge releases mis-read, always take the numpy path. Both
give identical arrays (``test_conversions.py`` checks this where cv_bridge exists).

Encoding builds messages for either message flavour from a *types* mapping
(``"sensor_msgs/msg/Image" -> class``): the ``rosbags`` typestore's ``ts.types`` (tests,
bag writing) or :func:`ros2_message_types` (the rclpy nodes). rclpy's generated classes want
``array.array`` for ``uint8[]``/``float64[]``/``float32[]`` sequences, not numpy arrays;
:func:`make_msg` converts field values by the class's declared field types.
"""

from __future__ import annotations

import array
from collections.abc import Mapping
from typing import Any

import numpy as np

from depth_kd_core.data import msg_codec as mc
from depth_kd_core.data.camera_model import CameraCalibration
from depth_kd_core.data.transforms import scale_intrinsics
from depth_kd_core.errors import ImageError
from depth_kd_core.inference import all_positive_finite

Types = Mapping[str, Any]
IMAGE, COMPRESSED, CAMERA_INFO = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                                  "sensor_msgs/msg/CameraInfo")
HEADER, TIME, ROI = "std_msgs/msg/Header", "builtin_interfaces/msg/Time", \
    "sensor_msgs/msg/RegionOfInterest"
FLOAT_ARRAY = "std_msgs/msg/Float32MultiArray"
_ARRAY_CODES = {"sequence<uint8>": ("B", np.uint8), "sequence<double>": ("d", np.float64),
                "sequence<float>": ("f", np.float32)}
_BRIDGE: list[Any] = []  # [CvBridge()] once imported, [None] when cv_bridge is absent


# ------------------------------------------------------------------------------- decoding


def cv_bridge_available() -> bool:
    """True when ``cv_bridge`` can be imported (it ships with ROS 2, not with pip)."""
    return _bridge() is not None


def _bridge() -> Any:
    if not _BRIDGE:
        try:
            from cv_bridge import CvBridge
            _BRIDGE.append(CvBridge())
        except ImportError:  # no ROS 2 on this machine: the numpy path does everything
            _BRIDGE.append(None)
    return _BRIDGE[0]


def _bridge_safe(msg: Any) -> bool:
    """A raw image cv_bridge decodes exactly: known encoding, unpadded, host byte order,
    sizes consistent (malformed messages take the codec path, which names the bad field)."""
    layout = mc.LAYOUTS.get(str(msg.encoding))
    if layout is None:
        return False
    itemsize = int(layout.dtype[1])
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * layout.channels * itemsize
    swapped = itemsize > 1 and bool(msg.is_bigendian) == np.little_endian
    return h > 0 and w > 0 and step == row and len(msg.data) == step * h and not swapped


def image_to_array(msg: Any, source: str = "", use_cv_bridge: bool | None = None
                   ) -> np.ndarray:
    """A raw ``sensor_msgs/Image`` in its native layout (H x W or H x W x C, host order).

    Args:
        msg: rclpy or rosbags Image.
        source: topic (or file) named in errors.
        use_cv_bridge: None = when installed, False = never, True = require it.
    """
    bridge = _bridge() if use_cv_bridge is not False else None
    if use_cv_bridge and bridge is None:
        raise ImageError("use_cv_bridge=True but cv_bridge is not installed (it comes with "
                         "ROS 2: source /opt/ros/<distro>/setup.bash)")
    if bridge is not None and _bridge_safe(msg):
        try:
            return np.array(bridge.imgmsg_to_cv2(msg, "passthrough"), copy=True)
        except Exception:  # noqa: BLE001 - older cv_bridge lacks some encodings; codec has them
            pass
    return mc.image_to_array(msg, source)


def msg_to_rgb8(msg: Any, source: str = "", use_cv_bridge: bool | None = None
                ) -> np.ndarray:
    """Image or CompressedImage (any colour/mono/bayer encoding) -> H x W x 3 uint8 RGB."""
    if mc.is_compressed(msg):
        return mc.msg_to_rgb8(msg, source)
    arr = image_to_array(msg, source, use_cv_bridge)
    return mc.array_to_rgb8(arr, str(msg.encoding), source)


def msg_to_depth_m(msg: Any, source: str = "", use_cv_bridge: bool | None = None
                   ) -> np.ndarray:
    """Depth Image (16UC1 mm / 32FC1 m) -> H x W float32 metres, NaN = invalid (REP 118)."""
    if mc.is_compressed(msg):
        depth = mc.msg_to_depth_m(msg, source)
    else:
        encoding = str(msg.encoding)
        if encoding not in mc.DEPTH_ENCODINGS:
            raise ImageError(f"{source}: field 'encoding' is {encoding!r}; a depth image must "
                             f"be 16UC1 (millimetres) or 32FC1 (metres)")
        depth = mc.depth_array_to_metres(image_to_array(msg, source, use_cv_bridge), encoding,
                                         source)
    depth[depth <= 0] = np.nan
    return depth


# ------------------------------------------------------------------------------- encoding


def is_rclpy_class(cls: type) -> bool:
    """rosidl-generated (rclpy) message classes describe their fields; rosbags' do not."""
    return hasattr(cls, "get_fields_and_field_types")


def _adapt(value: Any, field_type: str) -> Any:
    """A numpy field value in the form rclpy's setters accept for ``field_type``."""
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
    """A ROS 2 Header with the stamp and frame of ``header`` (ROS 1 or ROS 2 message)."""
    return make_header(types, (header.stamp.sec, header.stamp.nanosec), header.frame_id)


def image_msg(types: Types, header: Any, fields: dict[str, Any]) -> Any:
    """sensor_msgs/Image from ``msg_codec`` field values (``image_fields`` and friends)."""
    return make_msg(types, IMAGE, header=header, **fields)


def _pixels_msg(types: Types, header: Any, arr: np.ndarray, encoding: str) -> Any:
    """Image of a C-contiguous H x W (x C) array whose dtype matches ``encoding``, copied
    once: rclpy classes get its bytes in one ``array.array``, rosbags classes a flat view."""
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
    if not all_positive_finite(depth):
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


def scale_calibration(calib: CameraCalibration, height: int, width: int) -> CameraCalibration:
    """The calibration of images resized from the calibrated size to ``height x width``.

    K and the left 3 x 3 of P scale per axis (pixel-centre convention of
    ``transforms.scale_intrinsics``); P's translation column scales with fx and fy (Tx =
    -fx * B). D and R do not change. Binning in the input is absorbed: the result describes
    the published image itself.
    """
    if calib.width <= 0 or calib.height <= 0:
        raise ImageError(f"camera_info has size {calib.width}x{calib.height}: uncalibrated")
    sx, sy = width / calib.width, height / calib.height
    P = calib.P.copy()
    P[:, :3] = scale_intrinsics(calib.P[:, :3], sx, sy)
    P[0, 3] *= sx
    P[1, 3] *= sy
    return CameraCalibration(int(width), int(height), calib.distortion_model, calib.D.copy(),
                             scale_intrinsics(calib.K, sx, sy), calib.R.copy(), P)


def check_calibrated(calib: CameraCalibration, source: str) -> CameraCalibration:
    """``calib`` itself when it describes a calibrated camera, else ImageError naming it.

    CameraInfo.msg: a zero size or K (and P) all zero mean "uncalibrated"; such a message
    must not drive focal scaling or be republished as intrinsics.
    """
    if calib.width <= 0 or calib.height <= 0:
        raise ImageError(f"{source} has size {calib.width}x{calib.height}: the camera is "
                         f"uncalibrated")
    K = calib.rectified_K()
    if not (K[0, 0] > 0 and K[1, 1] > 0 and np.isfinite(K).all()):
        raise ImageError(f"{source} has fx = {K[0, 0]:g}, fy = {K[1, 1]:g} in K/P: the camera "
                         f"is uncalibrated (K all zero, CameraInfo.msg); calibrate it or set "
                         f"use_camera_info: false")
    return calib


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


def ros2_message_types() -> dict[str, Any]:
    """The rclpy (rosidl) classes of every message this package builds.

    Imported lazily so that this module stays importable without ROS 2.
    """
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
    from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension, MultiArrayLayout

    return {IMAGE: Image, COMPRESSED: CompressedImage, CAMERA_INFO: CameraInfo,
            HEADER: Header, TIME: Time, ROI: RegionOfInterest, FLOAT_ARRAY: Float32MultiArray,
            "std_msgs/msg/MultiArrayLayout": MultiArrayLayout,
            "std_msgs/msg/MultiArrayDimension": MultiArrayDimension}
