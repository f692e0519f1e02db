"""depth_kd_ros.conversions: decoding, malformed messages, outgoing messages and cv_bridge.

Every listed encoding decodes to the right values honouring step and byte order, malformed
messages raise a DepthKDError naming the field, outgoing messages
(``depth_kd_core.data.bags.messages``, what the nodes publish) are valid ROS 2 messages for
rosbags classes and carry array.array sequences for rclpy classes, and cv_bridge (where
installed) gives the same arrays as the numpy path.
"""

from __future__ import annotations

import array

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.messages import (
    FLOAT_ARRAY,
    IMAGE,
    camera_info_msg,
    copy_header,
    depth_msg,
    float_array_msg,
    make_header,
)
from depth_kd_core.data.camera import CameraCalibration
from depth_kd_core.errors import DepthKDError, ImageError
from depth_kd_ros import conversions
from depth_kd_ros.conversions import (
    bridged_image_to_array,
    bridged_msg_to_depth_m,
    bridged_msg_to_rgb8,
    cv_bridge_available,
    ros2_message_types,
)

from bag_helpers import TS, header, image

ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "bayer_rggb8", "bayer_bggr8",
             "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16", "16UC1", "32FC1")
RNG = np.random.default_rng(0)


def _array(encoding: str, h: int = 6, w: int = 8) -> np.ndarray:
    layout = mc.LAYOUTS[encoding]
    shape = (h, w) if layout.channels == 1 else (h, w, layout.channels)
    if layout.dtype == "f4":
        return RNG.uniform(0.5, 60.0, shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(layout.dtype).max + 1, shape, dtype=layout.dtype)


def _msg(arr: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> object:
    itemsize = arr.dtype.itemsize
    step = arr.shape[1] * mc.LAYOUTS[encoding].channels * itemsize + pad * itemsize
    fields = mc.image_fields(arr, encoding, big_endian=big_endian, step=step)
    return TS.deserialize_cdr(TS.serialize_cdr(image(7, **fields), "sensor_msgs/msg/Image"),
                              "sensor_msgs/msg/Image")


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("pad,big", [(0, False), (3, False), (0, True), (2, True)])
def test_numpy_path_decodes_every_encoding_with_step_and_byte_order(encoding, pad, big):
    arr = _array(encoding)
    out = bridged_image_to_array(_msg(arr, encoding, pad, big), "/cam", use_cv_bridge=False)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.isnative and out.flags.writeable


def test_colour_values_land_in_the_right_channels():
    rgb = _array("rgb8")
    for encoding, arr in (("bgr8", rgb[..., ::-1]), ("rgba8", np.dstack([rgb, rgb[..., :1]])),
                          ("bgra8", np.dstack([rgb[..., ::-1], rgb[..., :1]]))):
        msg = _msg(np.ascontiguousarray(arr), encoding, pad=1)
        np.testing.assert_array_equal(bridged_msg_to_rgb8(msg, use_cv_bridge=False), rgb)
    mono = _array("mono16")
    out = bridged_msg_to_rgb8(_msg(mono, "mono16", big_endian=True), use_cv_bridge=False)
    np.testing.assert_array_equal(out[..., 1], (mono >> 8).astype(np.uint8))


def test_depth_decodes_to_metres_with_nan_for_invalid():
    mm = np.array([[0, 1500], [65535, 250]], np.uint16)
    out = bridged_msg_to_depth_m(_msg(mm, "16UC1", pad=1, big_endian=True))
    np.testing.assert_allclose(out, [[np.nan, 1.5], [65.535, 0.25]], equal_nan=True)
    m = np.array([[np.nan, 2.0], [-1.0, 0.0]], np.float32)
    np.testing.assert_allclose(bridged_msg_to_depth_m(_msg(m, "32FC1")),
                               [[np.nan, 2.0], [np.nan, np.nan]], equal_nan=True)
    with pytest.raises(ImageError, match="field 'encoding' is 'rgb8'"):
        bridged_msg_to_depth_m(_msg(_array("rgb8"), "rgb8"), "/depth")


@pytest.mark.parametrize("change,field", [
    ({"step": 10}, "step"), ({"encoding": "rgb9"}, "encoding"), ({"width": 0}, "width"),
    ({"data": np.zeros(5, np.uint8)}, "truncated"), ({"step": 25}, "step"),
])
def test_malformed_images_name_the_field(change, field):
    fields = mc.image_fields(_array("rgb8"), "rgb8")
    fields.update(change)
    with pytest.raises(DepthKDError, match=field) as info:
        bridged_msg_to_rgb8(image(1, **fields), "/cam/image_raw", use_cv_bridge=False)
    assert "/cam/image_raw" in str(info.value)


def test_compressed_images_decode_and_corrupt_ones_are_refused():
    rgb = _array("rgb8", 16, 24)
    Compressed = TS.types["sensor_msgs/msg/CompressedImage"]
    png = Compressed(header=header(1), **mc.compressed_fields(rgb, "png"))
    np.testing.assert_array_equal(bridged_msg_to_rgb8(png), rgb)
    bad = Compressed(header=header(1), format="png", data=png.data[:-20])
    with pytest.raises(ImageError, match="field 'data'"):
        bridged_msg_to_rgb8(bad, "/cam/image/compressed")


def test_outgoing_depth_message_is_valid_ros2_32fc1():
    depth = np.array([[1.0, 0.0], [np.inf, 2.5]], np.float32)
    msg = depth_msg(TS.types, make_header(TS.types, (12, 34), "optical"), depth)
    back = TS.deserialize_cdr(TS.serialize_cdr(msg, "sensor_msgs/msg/Image"),
                              "sensor_msgs/msg/Image")
    assert (back.encoding, back.step, back.is_bigendian) == ("32FC1", 8, 0)
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == \
        (12, 34, "optical")
    np.testing.assert_array_equal(mc.image_to_array(back), [[1.0, np.nan], [np.nan, 2.5]])


def test_copy_header_drops_ros1_seq():
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    h1 = ros1.types["std_msgs/msg/Header"](
        seq=9, stamp=ros1.types["builtin_interfaces/msg/Time"](sec=5, nanosec=6), frame_id="f")
    h2 = copy_header(TS.types, h1)
    assert not hasattr(h2, "seq") and (h2.stamp.sec, h2.stamp.nanosec, h2.frame_id) == (5, 6, "f")


def test_scaled_calibration_by_hand_into_a_camera_info_message():
    K = np.array([[400.0, 0, 319.5], [0, 410.0, 239.5], [0, 0, 1]])
    P = np.hstack([K, [[-40.0], [0.0], [0.0]]])
    calib = CameraCalibration(640, 480, "plumb_bob", np.array([0.1, 0, 0, 0, 0]), K, np.eye(3),
                              P)
    half = calib.scaled_to(240, 320)
    np.testing.assert_allclose(half.K, [[200.0, 0, 159.5], [0, 205.0, 119.5], [0, 0, 1]])
    np.testing.assert_allclose(half.P[:, 3], [-20.0, 0, 0])
    assert (half.width, half.height) == (320, 240) and half.D[0] == 0.1
    info = camera_info_msg(TS.types, make_header(TS.types, (1, 2), "cam"), half)
    back = TS.deserialize_cdr(TS.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"),
                              "sensor_msgs/msg/CameraInfo")
    np.testing.assert_allclose(np.asarray(back.p).reshape(3, 4), half.P)
    assert (back.width, back.height, back.binning_x) == (320, 240, 0)


def test_float_array_layout():
    msg = float_array_msg(TS.types, "a,b,c", [1.0, 2.5, float("nan")])
    back = TS.deserialize_cdr(TS.serialize_cdr(msg, FLOAT_ARRAY), FLOAT_ARRAY)
    assert back.layout.dim[0].label == "a,b,c" and back.layout.dim[0].size == 3
    np.testing.assert_array_equal(back.data, np.array([1.0, 2.5, np.nan], np.float32))


class _RosidlStyleImage:
    """Mimics a rosidl-generated (rclpy) class: declared field types, strict setters."""

    _TYPES = {"header": "std_msgs/Header", "height": "uint32", "width": "uint32",
              "encoding": "string", "is_bigendian": "uint8", "step": "uint32",
              "data": "sequence<uint8>"}

    @classmethod
    def get_fields_and_field_types(cls) -> dict[str, str]:
        return dict(cls._TYPES)

    def __init__(self, **kwargs) -> None:
        assert set(kwargs) <= set(self._TYPES), set(kwargs) - set(self._TYPES)
        for key, value in kwargs.items():
            if key == "data":  # rosidl accepts array.array('B') (fast) or a sequence of ints
                assert isinstance(value, array.array) and value.typecode == "B"
            setattr(self, key, value)


def test_rclpy_style_classes_get_array_array_sequences():
    types = dict(TS.types, **{IMAGE: _RosidlStyleImage})
    msg = depth_msg(types, header(1), np.array([[1.5, np.nan]], np.float32))
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    np.testing.assert_array_equal(mc.image_to_array(msg), [[1.5, np.nan]])


def test_real_rclpy_message_classes():
    pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages are not installed "
                                                  "(source /opt/ros/<distro>/setup.bash)")
    types = ros2_message_types()
    depth = depth_msg(types, make_header(types, (3, 4), "cam"),
                         np.array([[2.0, 0.0]], np.float32))
    assert isinstance(depth.data, array.array)
    np.testing.assert_array_equal(mc.image_to_array(depth), [[2.0, np.nan]])
    calib = CameraCalibration(2, 1, "plumb_bob", np.zeros(5), np.eye(3), np.eye(3),
                              np.hstack([np.eye(3), np.zeros((3, 1))]))
    info = camera_info_msg(types, depth.header, calib)
    assert list(info.d) == [0.0] * 5 and info.k[0] == 1.0


def test_cv_bridge_required_but_absent_is_a_clear_error():
    if cv_bridge_available():
        pytest.skip("cv_bridge is installed here; this checks the message without it")
    with pytest.raises(ImageError, match="cv_bridge is not installed"):
        bridged_image_to_array(_msg(_array("rgb8"), "rgb8"), use_cv_bridge=True)


def test_cv_bridge_and_numpy_paths_are_identical():
    pytest.importorskip("cv_bridge", reason="cv_bridge ships with ROS 2 and is not installed "
                                            "here; the numpy path is tested above")
    assert cv_bridge_available()
    for encoding in ENCODINGS:
        for pad, big in ((0, False), (3, False), (0, True)):
            msg = _msg(_array(encoding), encoding, pad, big)
            a = bridged_image_to_array(msg, use_cv_bridge=True)
            b = bridged_image_to_array(msg, use_cv_bridge=False)
            assert a.dtype == b.dtype and a.shape == b.shape, (encoding, pad, big)
            np.testing.assert_array_equal(a, b, err_msg=f"{encoding} pad={pad} big={big}")
            if encoding not in ("16UC1", "32FC1"):
                np.testing.assert_array_equal(bridged_msg_to_rgb8(msg, use_cv_bridge=True),
                                              bridged_msg_to_rgb8(msg, use_cv_bridge=False))


class _RecordingBridge:
    """Stands in for CvBridge to check which messages are routed to it (passthrough only)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def imgmsg_to_cv2(self, msg, desired_encoding):
        assert desired_encoding == "passthrough"
        self.calls.append(msg.encoding)
        layout = mc.LAYOUTS[msg.encoding]
        shape = (msg.height, msg.width) + ((layout.channels,) if layout.channels > 1 else ())
        return np.frombuffer(np.asarray(msg.data).tobytes(), np.dtype(layout.dtype)).reshape(shape)


def test_cv_bridge_gets_only_the_messages_it_decodes_exactly(monkeypatch):
    bridge = _RecordingBridge()
    monkeypatch.setattr(conversions, "_BRIDGE", [bridge])
    arr = _array("mono16")
    np.testing.assert_array_equal(bridged_image_to_array(_msg(arr, "mono16")), arr)
    assert bridge.calls == ["mono16"]
    for msg in (_msg(arr, "mono16", pad=2), _msg(arr, "mono16", big_endian=True)):
        np.testing.assert_array_equal(bridged_image_to_array(msg), arr)  # numpy path
    truncated = _msg(arr, "mono16")
    truncated.data = truncated.data[:-4]
    with pytest.raises(ImageError, match="truncated"):
        bridged_image_to_array(truncated, "/cam")
    assert bridge.calls == ["mono16"]
    np.testing.assert_array_equal(bridged_image_to_array(_msg(arr, "mono16"), use_cv_bridge=False),
                                  arr)
    assert bridge.calls == ["mono16"]
