"""The one image codec: ``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy.

Used by bag reading, bag writing and the ROS nodes. Functions are duck-typed on message
objects: the ``rosbags`` classes and rclpy's generated classes have the same fields
(``height, width, encoding, is_bigendian, step, data`` and ``format, data``), so one codec
serves both. Every malformed input raises :class:`~depth_kd_core.errors.ImageError` naming the
message field that is wrong and what was expected; ``source`` (a topic or file) is prefixed to
the message when given.

Decoding::

    rgb = msg_to_rgb8(msg)             # H x W x 3 uint8 RGB, any colour encoding or jpeg/png
    depth = msg_to_depth_m(msg)        # H x W float32 metres, 0 = invalid (16UC1 mm, 32FC1 m)
    arr = image_to_array(msg)          # native layout of the encoding (e.g. bayer stays raw)

Encoding (returns plain field values; build a message with ``Image(header=h, **fields)``)::

    fields = image_fields(rgb, "rgb8")                  # data: flat uint8 numpy array
    fields = compressed_fields(rgb, "jpeg")             # {"format": ..., "data": ...}
    fields = depth_image_fields(depth_m, "16UC1")       # metres -> millimetres

For rclpy, whose ``uint8[]`` fields want ``array.array('B')``, pass
``array.array('B', fields["data"].tobytes())`` (``depth_kd_ros.conversions`` does this).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np

from depth_kd_core.errors import ImageError

MM_PER_M = 1000.0  # REP 118: 16UC1 depth images are millimetres, 32FC1 metres


class Layout(NamedTuple):
    """Pixel layout of a raw ``sensor_msgs/Image`` encoding."""

    dtype: str  # numpy kind + size without byte order: "u1", "u2", "f4"
    channels: int


# sensor_msgs/image_encodings.hpp names this codec understands.
LAYOUTS: dict[str, Layout] = {
    "rgb8": Layout("u1", 3), "bgr8": Layout("u1", 3), "rgba8": Layout("u1", 4),
    "bgra8": Layout("u1", 4), "rgb16": Layout("u2", 3), "bgr16": Layout("u2", 3),
    "mono8": Layout("u1", 1), "mono16": Layout("u2", 1), "8UC1": Layout("u1", 1),
    "8UC3": Layout("u1", 3), "16UC1": Layout("u2", 1), "32FC1": Layout("f4", 1),
    "bayer_rggb8": Layout("u1", 1), "bayer_bggr8": Layout("u1", 1),
    "bayer_gbrg8": Layout("u1", 1), "bayer_grbg8": Layout("u1", 1),
    "bayer_rggb16": Layout("u2", 1), "bayer_bggr16": Layout("u2", 1),
    "bayer_gbrg16": Layout("u2", 1), "bayer_grbg16": Layout("u2", 1),
    "yuv422": Layout("u1", 2), "yuv422_yuy2": Layout("u1", 2),
}
SUPPORTED_ENCODINGS = tuple(LAYOUTS)
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")

# OpenCV names a Bayer pattern by the second row's first two pixels, so ROS "rggb" is
# OpenCV "BG" (the same table as cv_bridge).
_BAYER_TO_RGB = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
                 "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
_CODECS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND"
_COMPRESSED_DEPTH_HEADER = 12  # compressed_depth_image_transport ConfigHeader (int32 + 2 float)


def _err(source: str, text: str) -> ImageError:
    return ImageError(f"{source}: {text}" if source else text)


def is_compressed(msg: Any) -> bool:
    """Return True for a ``CompressedImage`` (has ``format``), False for a raw ``Image``."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def stamp_ns(msg: Any) -> int:
    """``msg.header.stamp`` as integer nanoseconds (ROS 1 and ROS 2 messages alike)."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _as_bytes(data: Any) -> np.ndarray:
    """Message ``data`` (numpy, bytes, array.array, list) as a flat uint8 array without copy."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else \
            np.frombuffer(data.tobytes(), np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), np.uint8)


# ------------------------------------------------------------------------------ raw Image


def _check_size(height: int, width: int, encoding: str, source: str) -> None:
    if height <= 0 or width <= 0:
        field = "height" if height <= 0 else "width"
        raise _err(source, f"field '{field}' is {height if height <= 0 else width}; an image "
                           f"needs height >= 1 and width >= 1 (got {width}x{height})")
    if encoding.startswith("bayer_") and (height % 2 or width % 2):
        field = "height" if height % 2 else "width"
        raise _err(source, f"field '{field}' is odd ({width}x{height}); a {encoding} mosaic "
                           f"needs even width and height")
    if encoding.startswith("yuv422") and width % 2:
        raise _err(source, f"field 'width' is odd ({width}); {encoding} packs pixel pairs")


def _layout(encoding: str, source: str) -> Layout:
    try:
        return LAYOUTS[encoding]
    except KeyError:
        raise _err(source, f"field 'encoding' is {encoding!r}, which is not supported; "
                           f"supported: {', '.join(SUPPORTED_ENCODINGS)}") from None


def image_to_array(msg: Any, source: str = "") -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into its native layout, honouring ``step`` and endianness.

    Returns:
        A new, writable, C-contiguous array in native byte order: H x W for one channel,
        H x W x C otherwise (channel order as the encoding says; Bayer stays a raw mosaic,
        yuv422 is H x W x 2).
    """
    encoding = str(msg.encoding)
    layout = _layout(encoding, source)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(height, width, encoding, source)
    itemsize = int(layout.dtype[1])
    row_bytes = width * layout.channels * itemsize
    if step < row_bytes:
        raise _err(source, f"field 'step' is {step} bytes, but a row of {width} {encoding} "
                           f"pixels needs at least {row_bytes}")
    if step % itemsize:
        raise _err(source, f"field 'step' is {step}, not a multiple of the {itemsize}-byte "
                           f"{encoding} sample size")
    buf = _as_bytes(msg.data)
    full, minimal = step * height, step * (height - 1) + row_bytes
    if buf.size > full:
        raise _err(source, f"field 'data' holds {buf.size} bytes but height x step = "
                           f"{height} x {step} = {full}; 'step' or the size fields are wrong")
    if buf.size < minimal:
        raise _err(source, f"field 'data' holds {buf.size} bytes but height x step = "
                           f"{height} x {step} = {full}; the image is truncated")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1),
                                           writeable=False)
    order = ">" if int(msg.is_bigendian) and itemsize > 1 else "<"
    pixels = rows.view(np.dtype(order + layout.dtype))
    out = np.empty((height, width * layout.channels), dtype=np.dtype(layout.dtype))
    out[...] = pixels  # one copy: drops row padding and converts to native byte order
    return out.reshape((height, width) if layout.channels == 1 else
                       (height, width, layout.channels))


def array_to_rgb8(arr: np.ndarray, encoding: str, source: str = "") -> np.ndarray:
    """Convert an array in ``encoding``'s native layout to H x W x 3 uint8 RGB.

    Colour orders are swapped, alpha dropped, mono replicated, 16-bit scaled by 1/256 and
    Bayer mosaics demosaiced (OpenCV bilinear). Depth encodings are refused.
    """
    if encoding in ("16UC1", "32FC1"):
        raise _err(source, f"field 'encoding' is {encoding!r}, a depth encoding; expected a "
                           f"colour or mono image (use msg_to_depth_m for depth)")
    _layout(encoding, source)
    if arr.dtype == np.uint16 and not encoding.startswith("bayer_"):
        arr = (arr >> 8).astype(np.uint8)
    if encoding.startswith("bayer_"):
        rgb = cv2.cvtColor(arr, _BAYER_TO_RGB[encoding[6:10]])
        return (rgb >> 8).astype(np.uint8) if rgb.dtype == np.uint16 else rgb
    if encoding in ("rgb8", "rgb16"):
        rgb = arr
    elif encoding in ("bgr8", "bgr16", "8UC3"):  # cv_bridge treats 8UC3 as bgr8
        rgb = arr[..., ::-1]
    elif encoding == "rgba8":
        rgb = arr[..., :3]
    elif encoding == "bgra8":
        rgb = arr[..., 2::-1]
    elif encoding == "yuv422":
        rgb = cv2.cvtColor(arr, cv2.COLOR_YUV2RGB_UYVY)
    elif encoding == "yuv422_yuy2":
        rgb = cv2.cvtColor(arr, cv2.COLOR_YUV2RGB_YUY2)
    else:  # mono8, 8UC1, mono16
        rgb = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb)


def depth_array_to_metres(arr: np.ndarray, encoding: str, source: str = "") -> np.ndarray:
    """16UC1/mono16 millimetres or 32FC1 metres -> H x W float32 metres, 0 = invalid.

    NaN, inf and negative values (ROS conventions for "no return") become 0.
    """
    if encoding in ("16UC1", "mono16"):
        return arr.astype(np.float32) / np.float32(MM_PER_M)
    if encoding == "32FC1":
        out = arr.astype(np.float32, copy=True)
        out[~np.isfinite(out) | (out < 0)] = 0.0
        return out
    raise _err(source, f"field 'encoding' is {encoding!r}; a depth image must be 16UC1 "
                       f"(millimetres) or 32FC1 (metres)")


# ------------------------------------------------------------------------ CompressedImage


def _parse_format(fmt: str, source: str) -> tuple[str, str, bool]:
    """(original encoding or "", codec, is compressedDepth) from a CompressedImage format."""
    text = fmt.strip()
    original, rest = ("", text) if ";" not in text else (p.strip() for p in text.split(";", 1))
    depth_transport = "compresseddepth" in rest.lower()
    codec = (rest.split() or [""])[0].lower()
    if depth_transport and codec == "compresseddepth":  # old form: "16UC1; compressedDepth"
        codec = "png"
    if codec not in _CODECS:
        raise _err(source, f"field 'format' is {fmt!r}; expected jpeg/jpg/png, optionally as "
                           f"'<encoding>; <jpeg|png> compressed <encoding>'")
    return original, codec, depth_transport


def _check_stream(data: np.ndarray, codec: str, source: str) -> None:
    """Refuse empty or truncated jpeg/png streams (OpenCV would decode them half-grey)."""
    if data.size == 0:
        raise _err(source, "field 'data' is empty; expected a compressed image")
    head, tail = data[:8].tobytes(), data[-16:].tobytes()
    if _CODECS[codec] == ".jpg":
        ok_head, ok_tail = head.startswith(_JPEG_SOI), _JPEG_EOI in tail
    else:
        ok_head, ok_tail = head == _PNG_SIGNATURE, _PNG_IEND in tail
    if not ok_head:
        raise _err(source, f"field 'data' does not start like a {codec} stream (corrupt)")
    if not ok_tail:
        raise _err(source, f"field 'data' ends before the {codec} end marker (truncated)")


def compressed_to_array(msg: Any, source: str = "") -> tuple[np.ndarray, str]:
    """Decode a ``CompressedImage``; returns (array, encoding of the array).

    Colour comes back as OpenCV gives it ("bgr8"/"bgra8"/"bgr16"); grey as "mono8"/"mono16";
    16-bit single-channel images whose format names 16UC1 (image_transport or
    compressed_depth_image_transport) as "16UC1" millimetres.
    """
    original, codec, depth_transport = _parse_format(str(msg.format), source)
    data = _as_bytes(msg.data)
    if depth_transport:
        if original != "16UC1":
            raise _err(source, f"field 'format' is {msg.format!r}; compressedDepth is "
                               f"supported for 16UC1 only (32FC1 uses inverse-depth "
                               f"quantisation)")
        data = data[_COMPRESSED_DEPTH_HEADER:]
    _check_stream(data, codec, source)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise _err(source, f"field 'data' is not a decodable {codec} stream (corrupt)")
    if arr.ndim == 2:
        if arr.dtype == np.uint16:
            return arr, "16UC1" if original == "16UC1" else "mono16"
        return arr, "mono8"
    channels = arr.shape[2]
    if arr.dtype == np.uint16:
        return arr[..., :3], "bgr16"
    return arr, "bgra8" if channels == 4 else "bgr8"


# -------------------------------------------------------------------------- either kind


def msg_to_rgb8(msg: Any, source: str = "") -> np.ndarray:
    """Image or CompressedImage -> H x W x 3 uint8 RGB (what the networks consume)."""
    if is_compressed(msg):
        arr, encoding = compressed_to_array(msg, source)
        if encoding == "16UC1":
            raise _err(source, f"field 'format' is {msg.format!r}, a depth image; expected "
                               f"a colour or mono image")
        return array_to_rgb8(arr, encoding, source)
    return array_to_rgb8(image_to_array(msg, source), str(msg.encoding), source)


def msg_to_depth_m(msg: Any, source: str = "") -> np.ndarray:
    """Depth Image (16UC1 mm, 32FC1 m) or 16-bit png CompressedImage -> H x W float32 metres."""
    if is_compressed(msg):
        arr, encoding = compressed_to_array(msg, source)
        if arr.dtype != np.uint16 or arr.ndim != 2:
            raise _err(source, f"field 'format' is {msg.format!r}; a compressed depth image "
                               f"must be a single-channel 16-bit png (millimetres)")
        return depth_array_to_metres(arr, "16UC1", source)
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise _err(source, f"field 'encoding' is {encoding!r}; a depth image must be 16UC1 "
                           f"(millimetres) or 32FC1 (metres)")
    return depth_array_to_metres(image_to_array(msg, source), encoding, source)


def image_size(msg: Any, source: str = "") -> tuple[int, int]:
    """(height, width) of a raw Image from its fields, of a CompressedImage by decoding."""
    if is_compressed(msg):
        arr, _ = compressed_to_array(msg, source)
        return arr.shape[0], arr.shape[1]
    return int(msg.height), int(msg.width)


# ------------------------------------------------------------------------------ encoding


def image_fields(array: np.ndarray, encoding: str, *, big_endian: bool = False,
                 step: int | None = None) -> dict[str, Any]:
    """Convert a numpy array to ``sensor_msgs/Image`` fields (everything but ``header``).

    Args:
        array: H x W (one channel) or H x W x C in ``encoding``'s layout and dtype.
        encoding: one of :data:`SUPPORTED_ENCODINGS`.
        big_endian: write multi-byte samples big-endian (sets ``is_bigendian``).
        step: row length in bytes; larger than needed pads each row with zeros.

    Returns:
        ``height, width, encoding, is_bigendian, step`` and ``data`` (flat uint8 array).
    """
    layout = _layout(encoding, "array")
    want = (2,) if layout.channels == 1 else (3,)
    if array.ndim not in want or (layout.channels > 1 and array.shape[2] != layout.channels):
        shape = "H x W" if layout.channels == 1 else f"H x W x {layout.channels}"
        raise ImageError(f"array has shape {array.shape}; {encoding} needs {shape}")
    if array.dtype != np.dtype(layout.dtype):
        raise ImageError(f"array has dtype {array.dtype}; {encoding} needs "
                         f"{np.dtype(layout.dtype)}")
    height, width = array.shape[:2]
    _check_size(height, width, encoding, "array")
    itemsize = int(layout.dtype[1])
    row_bytes = width * layout.channels * itemsize
    step = row_bytes if step is None else int(step)
    if step < row_bytes or step % itemsize:
        raise ImageError(f"step {step} is invalid for {width} {encoding} pixels: it must be "
                         f">= {row_bytes} and a multiple of {itemsize}")
    order = ">" if big_endian else "<"
    samples = np.ascontiguousarray(array, dtype=np.dtype(order + layout.dtype))
    data = np.zeros((height, step), dtype=np.uint8)
    data[:, :row_bytes] = samples.reshape(height, -1).view(np.uint8)
    return {"height": height, "width": width, "encoding": encoding,
            "is_bigendian": int(bool(big_endian) and itemsize > 1), "step": step,
            "data": data.reshape(-1)}


def compressed_fields(array: np.ndarray, fmt: str = "jpeg", *, encoding: str = "rgb8",
                      quality: int = 95) -> dict[str, Any]:
    """Encode a numpy array as ``sensor_msgs/CompressedImage`` fields (``format``, ``data``).

    Args:
        array: image in ``encoding`` (rgb8, bgr8, mono8; mono16/16UC1 for png only).
        fmt: "jpeg" or "png".
        encoding: layout of ``array``; recorded in ``format`` the way image_transport does
            (``"rgb8; jpeg compressed bgr8"``).
        quality: jpeg quality 1-100.
    """
    if fmt not in ("jpeg", "png"):
        raise ImageError(f"format {fmt!r} is not supported; expected 'jpeg' or 'png'")
    if encoding in ("rgb8", "bgr8"):
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ImageError(f"array has {array.dtype} {array.shape}; {encoding} needs "
                             f"H x W x 3 uint8")
        bgr = array[..., ::-1] if encoding == "rgb8" else array
        target = "bgr8"
    elif encoding in ("mono8", "mono16", "16UC1"):
        dtype = np.uint8 if encoding == "mono8" else np.uint16
        if array.ndim != 2 or array.dtype != dtype:
            raise ImageError(f"array has {array.dtype} {array.shape}; {encoding} needs "
                             f"H x W {np.dtype(dtype)}")
        if dtype == np.uint16 and fmt != "png":
            raise ImageError(f"{encoding} images can only be compressed as png, not {fmt}")
        bgr, target = array, "mono8" if dtype == np.uint8 else "mono16"
    else:
        raise ImageError(f"encoding {encoding!r} cannot be compressed; expected rgb8, bgr8, "
                         f"mono8, mono16 or 16UC1")
    _check_size(array.shape[0], array.shape[1], encoding, "array")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(_CODECS[fmt], np.ascontiguousarray(bgr), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode a {array.shape} {encoding} image as {fmt}")
    return {"format": f"{encoding}; {fmt} compressed {target}", "data": buf.reshape(-1)}


def depth_image_fields(depth_m: np.ndarray, encoding: str = "32FC1", *,
                       invalid: float = 0.0) -> dict[str, Any]:
    """H x W metres (0 = invalid) -> depth Image fields: 32FC1 metres or 16UC1 millimetres.

    Args:
        depth_m: H x W depth, metres; values <= 0 or non-finite are invalid.
        encoding: "32FC1" or "16UC1" (rounded millimetres, 0 = invalid; depths beyond the
            65.535 m that 16 bits hold become invalid rather than a wrong, clipped value).
        invalid: value written for invalid pixels in 32FC1 (0, or NaN as ROS nodes publish).
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if encoding == "32FC1":
        return image_fields(np.where(valid, depth, np.float32(invalid)).astype(np.float32),
                            "32FC1")
    if encoding == "16UC1":
        mm = np.round(np.where(valid, depth, 0.0) * MM_PER_M)
        mm[mm > np.iinfo(np.uint16).max] = 0
        return image_fields(mm.astype(np.uint16), "16UC1")
    raise ImageError(f"depth encoding {encoding!r} is not supported; expected 32FC1 or 16UC1")
