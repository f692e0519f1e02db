"""The node-side face of ``depth_kd_core.data.bags.codec``: messages <-> numpy, no rclpy.

Decoding goes through the one codec (``data.bags.codec``) for every encoding it knows (rgb8, bgr8,
rgba8, bgra8, mono8, mono16, bayer_*, 16UC1, 32FC1, yuv422 …), honouring ``step`` (row
padding) and ``is_bigendian``; anything malformed raises
:class:`~depth_kd_core.errors.ImageError` (a ``DepthKDError``) naming the field. When
``cv_bridge`` is installed, raw images whose rows are unpadded and in host byte order are
decoded by ``CvBridge.imgmsg_to_cv2(msg, "passthrough")`` (what ROS users expect); padded or
byte-swapped images, which some cv_bridge releases mis-read, always take the numpy path. Both
give identical arrays (``test_conversions.py`` checks this where cv_bridge exists).

The functions carry a ``bridged_`` prefix: they take the same messages as the codec's
``image_to_array`` / ``msg_to_rgb8`` / ``msg_to_depth_m`` plus ``use_cv_bridge``, and one
name should not mean two functions.

Encoding (``make_msg``, ``depth_msg``, ``camera_info_msg`` …) is
:mod:`depth_kd_core.data.bags.messages`, shared with ``bag_infer``: import it from there.
:func:`ros2_message_types` gives the rclpy classes it builds for the nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.messages import (
    CAMERA_INFO,
    COMPRESSED,
    FLOAT_ARRAY,
    HEADER,
    IMAGE,
    ROI,
    TIME,
)
from depth_kd_core.errors import ImageError

_BRIDGE: list[Any] = []  # [CvBridge()] once imported, [None] when cv_bridge is absent


# ------------------------------------------------------------------------------- decoding


def cv_bridge_available() -> bool:
    """Return True when ``cv_bridge`` can be imported (it ships with ROS 2, not with pip)."""
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
    """Return True for a raw image that cv_bridge decodes exactly.

    Known encoding, unpadded, host byte order, sizes consistent (malformed messages take the
    codec path, which names the bad field).
    """
    layout = mc.LAYOUTS.get(str(msg.encoding))
    if layout is None:
        return False
    itemsize = int(layout.dtype[1])
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * layout.channels * itemsize
    swapped = itemsize > 1 and bool(msg.is_bigendian) == np.little_endian
    return h > 0 and w > 0 and step == row and len(msg.data) == step * h and not swapped


def bridged_image_to_array(msg: Any, source: str = "", use_cv_bridge: bool | None = None
                           ) -> np.ndarray:
    """Decode a raw ``sensor_msgs/Image`` in its native layout (H x W or H x W x C, host order).

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


def bridged_msg_to_rgb8(msg: Any, source: str = "", use_cv_bridge: bool | None = None
                        ) -> np.ndarray:
    """Image or CompressedImage (any colour/mono/bayer encoding) -> H x W x 3 uint8 RGB."""
    if mc.is_compressed(msg):
        return mc.msg_to_rgb8(msg, source)
    arr = bridged_image_to_array(msg, source, use_cv_bridge)
    return mc.array_to_rgb8(arr, str(msg.encoding), source)


def bridged_msg_to_depth_m(msg: Any, source: str = "", use_cv_bridge: bool | None = None
                           ) -> np.ndarray:
    """Depth Image (16UC1 mm / 32FC1 m) -> H x W float32 metres, NaN = invalid (REP 118)."""
    if mc.is_compressed(msg):
        depth = mc.msg_to_depth_m(msg, source)
    else:
        encoding = str(msg.encoding)
        if encoding not in mc.DEPTH_ENCODINGS:
            raise ImageError(f"{source}: field 'encoding' is {encoding!r}; a depth image must "
                             f"be 16UC1 (millimetres) or 32FC1 (metres)")
        arr = bridged_image_to_array(msg, source, use_cv_bridge)
        depth = mc.depth_array_to_metres(arr, encoding, source)
    depth[depth <= 0] = np.nan
    return depth


def ros2_message_types() -> dict[str, Any]:
    """Return the rclpy (rosidl) classes of every message this package builds.

    Imported lazily so that this module stays importable without ROS 2.
    """
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest
    from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension, MultiArrayLayout

    return {IMAGE: Image, COMPRESSED: CompressedImage, CAMERA_INFO: CameraInfo,
            HEADER: Header, TIME: Time, ROI: RegionOfInterest, FLOAT_ARRAY: Float32MultiArray,
            "std_msgs/msg/MultiArrayLayout": MultiArrayLayout,
            "std_msgs/msg/MultiArrayDimension": MultiArrayDimension}
