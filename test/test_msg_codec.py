"""Image codec: round trips, colour conversions, compressed images and malformed messages.

Every encoding round-trips bit-exactly (with row padding and big-endian samples), colour
conversions put the right values in the right channels, compressed images decode to their
source, and every malformed message is refused naming the field.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.errors import DepthKDError, ImageError

TS = get_typestore(Stores.ROS2_HUMBLE)
Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
RNG = np.random.default_rng(0)


def _header(ns: int = 1_500_000_123) -> object:
    return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cam")


def _image(**fields) -> object:
    return Image(header=_header(), **fields)


def _random(encoding: str, h: int = 6, w: int = 8) -> np.ndarray:
    layout = mc.LAYOUTS[encoding]
    shape = (h, w) if layout.channels == 1 else (h, w, layout.channels)
    if layout.dtype == "f4":
        return RNG.uniform(0.1, 80.0, shape).astype(np.float32)
    info = np.iinfo(np.dtype(layout.dtype))
    return RNG.integers(0, info.max + 1, shape, dtype=np.dtype(layout.dtype))


def _cdr_roundtrip(msg: object, msgtype: str) -> object:
    """Return what a subscriber or bag reader gets: the message serialised and parsed back."""
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msgtype), msgtype)


# ------------------------------------------------------------------ raw Image round trips


@pytest.mark.parametrize("encoding", mc.SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("pad", [0, 5])
def test_every_encoding_round_trips_with_padding_and_byte_order(encoding, big_endian, pad):
    itemsize = int(mc.LAYOUTS[encoding].dtype[1])
    arr = _random(encoding)
    row_bytes = arr.shape[1] * mc.LAYOUTS[encoding].channels * itemsize
    step = row_bytes + pad * itemsize
    fields = mc.image_fields(arr, encoding, big_endian=big_endian, step=step)
    assert fields["step"] == step and fields["data"].dtype == np.uint8
    assert fields["data"].size == step * arr.shape[0]
    msg = _cdr_roundtrip(_image(**fields), "sensor_msgs/msg/Image")
    out = mc.image_to_array(msg)
    assert out.dtype == arr.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_big_endian_mono16_bytes_are_most_significant_first():
    data = np.array([0x01, 0x02, 0xAB, 0xCD], dtype=np.uint8)
    msg = _image(height=1, width=2, encoding="mono16", is_bigendian=1, step=4, data=data)
    np.testing.assert_array_equal(mc.image_to_array(msg), [[0x0102, 0xABCD]])
    little = _image(height=1, width=2, encoding="mono16", is_bigendian=0, step=4, data=data)
    np.testing.assert_array_equal(mc.image_to_array(little), [[0x0201, 0xCDAB]])
    fields = mc.image_fields(np.array([[0x0102]], np.uint16), "16UC1", big_endian=True)
    assert fields["data"].tolist() == [0x01, 0x02] and fields["is_bigendian"] == 1


def test_big_endian_32fc1_decodes_to_native_metres():
    values = np.array([[1.5, 42.25]], dtype=">f4")
    msg = _image(height=1, width=2, encoding="32FC1", is_bigendian=1, step=8,
                 data=np.frombuffer(values.tobytes(), np.uint8))
    np.testing.assert_array_equal(mc.msg_to_depth_m(msg), [[1.5, 42.25]])


def test_row_padding_bytes_are_ignored():
    rgb = _random("rgb8", 3, 4)
    data = np.full((3, 16), 0xEE, dtype=np.uint8)  # 12 used bytes + 4 padding per row
    data[:, :12] = rgb.reshape(3, 12)
    msg = _image(height=3, width=4, encoding="rgb8", is_bigendian=0, step=16,
                 data=data.reshape(-1))
    np.testing.assert_array_equal(mc.msg_to_rgb8(msg), rgb)


def test_last_row_without_padding_is_accepted():
    mono = _random("mono8", 3, 4)
    data = np.zeros((3, 6), np.uint8)
    data[:, :4] = mono
    msg = _image(height=3, width=4, encoding="mono8", is_bigendian=0, step=6,
                 data=data.reshape(-1)[:-2])  # drivers may omit the final row's padding
    np.testing.assert_array_equal(mc.image_to_array(msg), mono)


def test_decoded_array_is_a_writable_copy():
    fields = mc.image_fields(_random("mono8"), "mono8")
    out = mc.image_to_array(_image(**fields))
    out[0, 0] ^= 0xFF
    assert out[0, 0] != fields["data"][0]


# ------------------------------------------------------------------ colour conversion


def test_colour_orders_alpha_and_mono_map_to_rgb():
    rgb = _random("rgb8")
    bgr, alpha = rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    np.testing.assert_array_equal(mc.array_to_rgb8(rgb, "rgb8"), rgb)
    np.testing.assert_array_equal(mc.array_to_rgb8(bgr, "bgr8"), rgb)
    np.testing.assert_array_equal(mc.array_to_rgb8(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    np.testing.assert_array_equal(mc.array_to_rgb8(np.concatenate([bgr, alpha], 2), "bgra8"), rgb)
    grey = _random("mono8")
    np.testing.assert_array_equal(mc.array_to_rgb8(grey, "mono8"), np.dstack([grey] * 3))
    np.testing.assert_array_equal(mc.array_to_rgb8(grey.astype(np.uint16) * 256 + 255, "mono16"),
                                  np.dstack([grey] * 3))


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer mosaic of an RGB image; ``pattern`` lists the colours of the top-left 2x2."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[pattern[k]]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_to_the_source_colour(pattern):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[...] = (200, 90, 30)  # flat colour: demosaicing is exact away from the border
    msg = _image(**mc.image_fields(_mosaic(rgb, pattern), f"bayer_{pattern}8"))
    out = mc.msg_to_rgb8(msg)
    np.testing.assert_array_equal(out[2:-2, 2:-2], rgb[2:-2, 2:-2])
    rgb16 = rgb.astype(np.uint16) * 256
    out16 = mc.msg_to_rgb8(_image(**mc.image_fields(_mosaic(rgb16, pattern),
                                                    f"bayer_{pattern}16")))
    np.testing.assert_array_equal(out16[2:-2, 2:-2], rgb[2:-2, 2:-2])


def test_yuv422_grey_decodes_to_grey():
    uyvy = np.full((4, 6, 2), 128, np.uint8)
    uyvy[..., 1] = 100  # Y = 100, U = V = 128 (no chroma)
    out = mc.array_to_rgb8(uyvy, "yuv422")
    assert out.shape == (4, 6, 3) and np.abs(out.astype(int) - 100).max() <= 2


# ------------------------------------------------------------------ depth


def test_16uc1_millimetres_and_32fc1_metres_decode_to_metres():
    mm = np.array([[0, 1500, 65535]], np.uint16)
    np.testing.assert_allclose(mc.msg_to_depth_m(_image(**mc.image_fields(mm, "16UC1"))),
                               [[0.0, 1.5, 65.535]], rtol=1e-6)
    metres = np.array([[np.nan, -1.0, np.inf, 3.25]], np.float32)
    np.testing.assert_array_equal(mc.msg_to_depth_m(_image(**mc.image_fields(metres, "32FC1"))),
                                  [[0.0, 0.0, 0.0, 3.25]])


@pytest.mark.parametrize("encoding, tol", [("32FC1", 0.0), ("16UC1", 0.0005)])
def test_depth_image_fields_round_trip_metres(encoding, tol):
    depth = np.array([[0.0, 1.2345, 62.9], [np.nan, 0.5, 10.0]], np.float32)
    out = mc.msg_to_depth_m(_image(**mc.depth_image_fields(depth, encoding)))
    np.testing.assert_allclose(out, np.nan_to_num(depth), atol=tol)
    nan_fields = mc.depth_image_fields(depth, "32FC1", invalid=np.nan)
    assert np.isnan(nan_fields["data"].view(np.float32)[0])


def test_16uc1_marks_depth_beyond_65_m_invalid_instead_of_clipping():
    fields = mc.depth_image_fields(np.array([[70.0, 65.0]], np.float32), "16UC1")
    np.testing.assert_array_equal(fields["data"].view(np.uint16), [0, 65000])


# ------------------------------------------------------------------ CompressedImage


def _compressed(**fields) -> object:
    return _cdr_roundtrip(CompressedImage(header=_header(), **fields),
                          "sensor_msgs/msg/CompressedImage")


def test_png_round_trips_losslessly_for_colour_mono_and_16bit():
    rgb, grey, mm = _random("rgb8", 20, 30), _random("mono8", 20, 30), _random("16UC1", 20, 30)
    out = mc.msg_to_rgb8(_compressed(**mc.compressed_fields(rgb, "png")))
    np.testing.assert_array_equal(out, rgb)
    out = mc.msg_to_rgb8(_compressed(**mc.compressed_fields(grey, "png", encoding="mono8")))
    np.testing.assert_array_equal(out, np.dstack([grey] * 3))
    fields = mc.compressed_fields(mm, "png", encoding="16UC1")
    arr, encoding = mc.compressed_to_array(_compressed(**fields))
    assert encoding == "16UC1"
    np.testing.assert_array_equal(arr, mm)
    np.testing.assert_allclose(mc.msg_to_depth_m(_compressed(**fields)), mm / 1000.0, rtol=1e-6)


def test_jpeg_keeps_colours_in_rgb_order():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    rgb[:, 16:32] = (0, 255, 0)
    rgb[:, 32:] = (0, 0, 255)
    fields = mc.compressed_fields(rgb, "jpeg", quality=95)
    assert fields["format"] == "rgb8; jpeg compressed bgr8"
    out = mc.msg_to_rgb8(_compressed(**fields)).astype(int)
    assert np.abs(out[4:-4, 4:12] - (255, 0, 0)).max() < 12
    assert np.abs(out[4:-4, 20:28] - (0, 255, 0)).max() < 12
    assert np.abs(out[4:-4, 36:44] - (0, 0, 255)).max() < 12


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "bgr8; jpeg compressed bgr8", " JPEG "])
def test_plain_and_image_transport_format_strings(fmt):
    rgb = np.full((8, 8, 3), (10, 120, 240), np.uint8)
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    out = mc.msg_to_rgb8(_compressed(format=fmt, data=buf.reshape(-1)))
    assert np.abs(out.astype(int) - (10, 120, 240)).max() <= 3


def test_compressed_depth_transport_16uc1():
    mm = _random("16UC1", 5, 7)
    ok, png = cv2.imencode(".png", mm)
    data = np.concatenate([np.zeros(12, np.uint8), png.reshape(-1)])  # ConfigHeader + png
    msg = _compressed(format="16UC1; compressedDepth png", data=data)
    np.testing.assert_allclose(mc.msg_to_depth_m(msg), mm / 1000.0, rtol=1e-6)


def test_stamp_and_size_helpers():
    fields = mc.image_fields(_random("rgb8", 5, 9), "rgb8")
    msg = _image(**fields)
    assert mc.stamp_ns(msg) == 1_500_000_123
    assert mc.image_size(msg) == (5, 9)
    png = _compressed(**mc.compressed_fields(_random("rgb8", 5, 9), "png"))
    assert mc.image_size(png) == (5, 9)
    assert mc.is_compressed(_compressed(**mc.compressed_fields(_random("rgb8"), "png")))
    assert not mc.is_compressed(msg)


# ------------------------------------------------------------------ malformed input


def _bad(match: str, fn, *args) -> None:
    with pytest.raises(ImageError, match=match) as info:
        fn(*args)
    assert isinstance(info.value, DepthKDError)


def test_unknown_encoding_names_the_field_and_lists_supported():
    msg = _image(height=2, width=2, encoding="weird16", is_bigendian=0, step=4,
                 data=np.zeros(8, np.uint8))
    _bad(r"/cam/image: field 'encoding' is 'weird16'.*supported: rgb8", mc.msg_to_rgb8, msg,
         "/cam/image")


def test_step_smaller_than_a_row_is_refused():
    msg = _image(height=2, width=4, encoding="rgb8", is_bigendian=0, step=10,
                 data=np.zeros(20, np.uint8))
    _bad(r"field 'step' is 10 bytes.*at least 12", mc.image_to_array, msg)


def test_step_not_a_multiple_of_the_sample_size_is_refused():
    msg = _image(height=2, width=2, encoding="mono16", is_bigendian=0, step=5,
                 data=np.zeros(10, np.uint8))
    _bad(r"field 'step' is 5, not a multiple", mc.image_to_array, msg)


def test_truncated_data_is_refused():
    msg = _image(height=4, width=4, encoding="mono8", is_bigendian=0, step=4,
                 data=np.zeros(11, np.uint8))
    _bad(r"field 'data' holds 11 bytes.*truncated", mc.image_to_array, msg)


def test_data_longer_than_step_says_step_is_wrong():
    msg = _image(height=2, width=4, encoding="mono8", is_bigendian=0, step=4,
                 data=np.zeros(12, np.uint8))  # really step 6: the step field lies
    _bad(r"field 'data' holds 12 bytes.*'step' or the size fields are wrong",
         mc.image_to_array, msg)


@pytest.mark.parametrize("h, w, field", [(0, 4, "height"), (4, 0, "width")])
def test_zero_size_is_refused(h, w, field):
    msg = _image(height=h, width=w, encoding="mono8", is_bigendian=0, step=w,
                 data=np.zeros(0, np.uint8))
    _bad(f"field '{field}' is 0", mc.image_to_array, msg)


def test_odd_bayer_size_is_refused():
    msg = _image(height=3, width=4, encoding="bayer_rggb8", is_bigendian=0, step=4,
                 data=np.zeros(12, np.uint8))
    _bad(r"field 'height' is odd \(4x3\).*bayer_rggb8", mc.msg_to_rgb8, msg)


def test_depth_encodings_are_not_colour_and_colour_is_not_depth():
    depth = _image(**mc.image_fields(np.ones((2, 2), np.float32), "32FC1"))
    _bad(r"'32FC1', a depth encoding", mc.msg_to_rgb8, depth)
    colour = _image(**mc.image_fields(_random("rgb8"), "rgb8"))
    _bad(r"field 'encoding' is 'rgb8'; a depth image must be 16UC1", mc.msg_to_depth_m, colour)


def test_truncated_and_corrupt_compressed_images_are_refused():
    ok, jpg = cv2.imencode(".jpg", _random("rgb8", 32, 32))
    _bad(r"field 'data' ends before the jpeg end marker \(truncated\)", mc.msg_to_rgb8,
         _compressed(format="jpeg", data=jpg.reshape(-1)[: jpg.size // 2]))
    _bad(r"does not start like a png stream", mc.msg_to_rgb8,
         _compressed(format="png", data=jpg.reshape(-1)))
    _bad(r"field 'data' is empty", mc.msg_to_rgb8,
         _compressed(format="png", data=np.zeros(0, np.uint8)))
    garbage = np.concatenate([np.frombuffer(b"\xff\xd8", np.uint8), np.zeros(40, np.uint8),
                              np.frombuffer(b"\xff\xd9", np.uint8)])
    _bad(r"not a decodable jpeg stream", mc.msg_to_rgb8, _compressed(format="jpeg", data=garbage))


def test_unknown_compressed_format_is_refused():
    _bad(r"field 'format' is 'tiff'", mc.msg_to_rgb8,
         _compressed(format="tiff", data=np.ones(4, np.uint8)))
    _bad(r"compressedDepth is supported for 16UC1 only", mc.msg_to_depth_m,
         _compressed(format="32FC1; compressedDepth png", data=np.ones(20, np.uint8)))


def test_encoders_refuse_arrays_that_do_not_match_the_encoding():
    _bad(r"rgb8 needs H x W x 3", mc.image_fields, np.zeros((4, 4), np.uint8), "rgb8")
    _bad(r"mono16 needs uint16", mc.image_fields, np.zeros((4, 4), np.uint8), "mono16")
    _bad(r"step 3 is invalid", lambda: mc.image_fields(np.zeros((2, 2, 3), np.uint8), "rgb8",
                                                       step=3))
    _bad(r"only be compressed as png",
         lambda: mc.compressed_fields(np.zeros((4, 4), np.uint16), "jpeg", encoding="16UC1"))
    _bad(r"format 'bmp' is not supported", mc.compressed_fields, _random("rgb8"), "bmp")
