"""Camera geometry and calibration: the one camera module of data, inference and the nodes.

Intrinsics under resize / crop / flip, image and depth resampling, and the calibration model
read from ``sensor_msgs/CameraInfo`` with rectification of raw images. Augmentations
(``transforms.py``), the datasets, inference and the ROS nodes import it; nothing takes these
helpers from ``transforms.py``.

Pixel convention: pixel centres at integer coordinates (``cx = (W - 1) / 2`` is the image
centre). Resizing by ``s`` maps ``u -> (u + 0.5) s - 0.5`` (what OpenCV's resize does), so
``fx' = s fx`` and ``cx' = (cx + 0.5) s - 0.5``.

Calibration: ROS 2 spells the CameraInfo matrices ``d, k, r, p``, ROS 1 ``D, K, R, P``;
:meth:`CameraCalibration.from_msg` reads either. Rectified images use the projection ``P``
(REP 104): intrinsics ``P[:3, :3]`` and, for the right camera of a stereo pair,
``P[0, 3] = -fx * B``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from depth_kd_core.errors import DataError, ImageError

RECTIFIED_TOL = 1e-6  # |D| and |R - I| below this count as "already rectified"
ASPECT_TOL = 0.01  # calibration and image aspect ratios may differ this much (rounding)
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant", "fisheye", "")


# ------------------------------------------------------------------------- intrinsics


def scale_intrinsics(K: torch.Tensor | np.ndarray, sx: float,
                     sy: float) -> torch.Tensor | np.ndarray:
    """Intrinsics after resizing the image by ``sx`` horizontally and ``sy`` vertically."""
    K = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def crop_intrinsics(K: torch.Tensor | np.ndarray, x0: int, y0: int) -> torch.Tensor | np.ndarray:
    """Intrinsics after cropping with top-left corner (x0, y0)."""
    K = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    K[0, 2] -= x0
    K[1, 2] -= y0
    return K


def flip_intrinsics(K: torch.Tensor | np.ndarray, width: int) -> torch.Tensor | np.ndarray:
    """Intrinsics of the horizontally mirrored image (u -> W - 1 - u)."""
    K = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64)
    K[0, 2] = width - 1 - K[0, 2]
    K[0, 1] = -K[0, 1]
    return K


# ------------------------------------------------------------------ numpy resampling


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W (x C) image -> height x width; area filter when shrinking, bilinear otherwise."""
    if img.shape[:2] == (height, width):
        return img
    shrink = height <= img.shape[0] and width <= img.shape[1]
    return cv2.resize(img, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each output pixel (centre-aligned nearest neighbour)."""
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize_nearest(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-aligned nearest-neighbour resize of an H x W map of any dtype (labels)."""
    return x[_nearest_index(height, x.shape[0])[:, None], _nearest_index(width, x.shape[1])]


def scatter_min(values: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                shape: tuple[int, int]) -> np.ndarray:
    """H x W float32 map with the smallest value landing on each pixel, 0 where none lands."""
    out = np.zeros(shape, dtype=np.float32)
    order = np.argsort(values, kind="stable")
    lin = (rows * shape[1] + cols)[order]
    uniq, first = np.unique(lin, return_index=True)  # first hit in ascending order = minimum
    out.reshape(-1)[uniq] = values[order][first]
    return out


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an H x W depth map (metres, 0 = invalid) without inventing in-between depths.

    Shrinking scatters every valid pixel to the output pixel holding its centre, closest
    point wins (sparse LiDAR keeps its returns, dense maps keep foreground edges sharp);
    enlarging uses nearest neighbour.
    """
    H, W = depth.shape
    if (H, W) == (height, width):
        return depth
    if height > H or width > W:
        return resize_nearest(depth, height, width)
    rows, cols = np.nonzero(depth > 0)
    tr = np.minimum(((rows + 0.5) * (height / H)).astype(np.int64), height - 1)
    tc = np.minimum(((cols + 0.5) * (width / W)).astype(np.int64), width - 1)
    return scatter_min(depth[rows, cols].astype(np.float32), tr, tc, (height, width))


def warp_depth_to_right(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Depth of the left view (H x W metres) seen from the right camera of a rectified pair.

    Each valid pixel moves left by its disparity ``fx * baseline / z`` (closest wins; the
    depth value is unchanged because the cameras differ by a pure x translation). Pixels the
    left view cannot see stay 0 (invalid).
    """
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float32)
    target = np.round(cols - fx * baseline / z).astype(np.int64)
    keep = (target >= 0) & (target < depth.shape[1])
    return scatter_min(z[keep], rows[keep], target[keep], depth.shape)


# ------------------------------------------------------------------------ calibration


def _field(msg: Any, name: str) -> Any:
    """CameraInfo matrix field in ROS 2 (lower case) or ROS 1 (upper case) spelling."""
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


@dataclass(frozen=True)
class CameraCalibration:
    """One camera's CameraInfo, as plain arrays (picklable, cacheable).

    Attributes:
        width, height: image size the calibration is for, pixels.
        distortion_model: "plumb_bob", "rational_polynomial", "equidistant" …
        D: distortion coefficients; K: 3 x 3 raw intrinsics; R: 3 x 3 rectifying rotation;
        P: 3 x 4 projection of the rectified image (all float64, pixels).
    """

    width: int
    height: int
    distortion_model: str
    D: np.ndarray
    K: np.ndarray
    R: np.ndarray
    P: np.ndarray

    @classmethod
    def from_msg(cls, msg: Any, source: str = "") -> CameraCalibration:
        """Read a ``sensor_msgs/CameraInfo`` (ROS 1 or ROS 2 message object)."""
        try:
            return cls(int(msg.width), int(msg.height), str(msg.distortion_model),
                       np.asarray(_field(msg, "d"), dtype=np.float64).reshape(-1),
                       np.asarray(_field(msg, "k"), dtype=np.float64).reshape(3, 3),
                       np.asarray(_field(msg, "r"), dtype=np.float64).reshape(3, 3),
                       np.asarray(_field(msg, "p"), dtype=np.float64).reshape(3, 4))
        except (AttributeError, ValueError) as exc:
            raise DataError(f"{source}: not a usable sensor_msgs/CameraInfo ({exc})") from exc

    @classmethod
    def from_dict(cls, d: dict) -> CameraCalibration:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["width"]), int(d["height"]), str(d["distortion_model"]),
                   np.asarray(d["D"], dtype=np.float64).reshape(-1),
                   np.asarray(d["K"], dtype=np.float64).reshape(3, 3),
                   np.asarray(d["R"], dtype=np.float64).reshape(3, 3),
                   np.asarray(d["P"], dtype=np.float64).reshape(3, 4))

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return {"width": self.width, "height": self.height,
                "distortion_model": self.distortion_model, "D": self.D.tolist(),
                "K": self.K.reshape(-1).tolist(), "R": self.R.reshape(-1).tolist(),
                "P": self.P.reshape(-1).tolist()}

    def is_rectified(self) -> bool:
        """Return True when images need no remapping: no distortion, no rectifying rotation."""
        return bool(np.all(np.abs(self.D) < RECTIFIED_TOL)
                    and np.all(np.abs(self.R - np.eye(3)) < RECTIFIED_TOL))

    def rectified_K(self) -> np.ndarray:
        """3 x 3 intrinsics of rectified images: ``P[:3, :3]``, or ``K`` when P is unset."""
        return self.P[:, :3].copy() if self.P[0, 0] > 0 else self.K.copy()

    def scaled_to(self, height: int, width: int, source: str = "") -> CameraCalibration:
        """Scale the calibration to images resized from the calibrated size to ``height x width``.

        The one scaling rule of the bag tools, the datasets and the nodes: K and P[:, :3]
        scale per axis (pixel-centre convention of :func:`scale_intrinsics`), P's
        translation column with fx and fy (Tx = -fx * B); D and R do not change. Drivers
        publish downscaled or binned images with the full-resolution CameraInfo; where the
        aspect ratios differ (an ROI crop looks like that too) callers warn with
        :meth:`aspect_mismatch`.
        """
        if self.width <= 0 or self.height <= 0:
            raise DataError(f"{source}: camera_info has size {self.width}x{self.height}; the "
                            f"camera is uncalibrated")
        if (self.height, self.width) == (height, width):
            return self
        sx, sy = width / self.width, height / self.height
        P = self.P.copy()
        P[:, :3] = scale_intrinsics(self.P[:, :3], sx, sy)
        P[0, 3] *= sx  # -fx * B scales with fx
        P[1, 3] *= sy
        return CameraCalibration(int(width), int(height), self.distortion_model,
                                 self.D.copy(), scale_intrinsics(self.K, sx, sy),
                                 self.R.copy(), P)

    def aspect_mismatch(self, height: int, width: int, source: str = "") -> str:
        """Warn when images of ``height x width`` have another aspect ratio; "" when they agree.

        Returns the warning text when the aspect ratio differs from the calibration's beyond
        ``ASPECT_TOL`` (rounding of odd sizes).
        """
        if self.width <= 0 or self.height <= 0 or \
                abs(self.width / self.height - width / height) <= ASPECT_TOL * width / height:
            return ""
        return (f"{source}: camera_info is for {self.width}x{self.height} images but the "
                f"images are {width}x{height} (different aspect ratio: ROI?); scaling K per "
                f"axis")


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


class Rectifier:
    """Undistort-and-rectify maps of one camera (``cv2.initUndistortRectifyMap``).

    Maps go from the rectified image (intrinsics ``calib.rectified_K()``) to raw pixels; they
    are fixed-point (CV_16SC2) for speed and built once per process. With ``out_size`` the
    rectified image is produced directly at that size (intrinsics scaled to match): one
    interpolation instead of a remap followed by a resize.
    """

    def __init__(self, calib: CameraCalibration, source: str = "",
                 out_size: tuple[int, int] | None = None) -> None:
        model = calib.distortion_model.lower()
        if model not in DISTORTION_MODELS:
            raise DataError(f"{source}: camera_info field 'distortion_model' is "
                            f"{calib.distortion_model!r}; supported: plumb_bob, "
                            f"rational_polynomial, equidistant")
        height, width = out_size or (calib.height, calib.width)
        size = (width, height)
        new_K = scale_intrinsics(calib.rectified_K(), width / calib.width, height / calib.height)
        if model in ("equidistant", "fisheye"):
            self.map1, self.map2 = cv2.fisheye.initUndistortRectifyMap(
                calib.K, calib.D[:4], calib.R, new_K, size, cv2.CV_16SC2)
        else:
            D = calib.D if calib.D.size else np.zeros(5)
            self.map1, self.map2 = cv2.initUndistortRectifyMap(
                calib.K, D, calib.R, new_K, size, cv2.CV_16SC2)
        self.K = new_K
        self.size = (height, width)

    def image(self, img: np.ndarray) -> np.ndarray:
        """Rectify an image (bilinear; outside the raw image becomes 0)."""
        return cv2.remap(img, self.map1, self.map2, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)

    def depth(self, depth: np.ndarray) -> np.ndarray:
        """Rectify a depth map registered to the raw image (nearest: depths are not mixed)."""
        return cv2.remap(depth, self.map1, self.map2, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT)


def distort_to_raw(rect: np.ndarray, K: np.ndarray, D: np.ndarray, R: np.ndarray,
                   P: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Make the raw (distorted, unrotated) image whose rectification with (K, D, R, P) is ``rect``.

    The inverse of :class:`Rectifier`: makes raw camera images out of rectified ones (bag
    writing, rectification tests); ``nearest`` for depth maps.
    """
    h, w = rect.shape[:2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    raw_px = np.stack([u.ravel(), v.ravel()], axis=1)[:, None, :]
    rect_px = cv2.undistortPoints(raw_px, K, D, R=R, P=P).reshape(h, w, 2)
    return cv2.remap(rect, rect_px[..., 0], rect_px[..., 1],
                     cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)


def axis_angle_rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """3 x 3 rotation of the rotation vector (rx, ry, rz), radians (Rodrigues)."""
    return cv2.Rodrigues(np.array([rx, ry, rz], dtype=np.float64))[0]


def stereo_baseline(left: CameraCalibration, right: CameraCalibration,
                    source: str = "") -> float:
    """Baseline in metres from the projections: ``(P_l[0, 3] - P_r[0, 3]) / fx``.

    With the usual ``P_l[0, 3] = 0`` this is ``-P_r[0, 3] / fx`` (REP 104: ``Tx = -fx * B``).
    """
    fx = right.P[0, 0]
    if fx <= 0:
        raise DataError(f"{source}: right camera_info has no projection matrix P (fx = {fx})")
    baseline = (left.P[0, 3] - right.P[0, 3]) / fx
    if baseline <= 0:
        raise DataError(f"{source}: right camera_info P[0,3] = {right.P[0, 3]:.4g} gives a "
                        f"baseline of {baseline:.4g} m; expected P[0,3] = -fx*B < 0 (is the "
                        f"pair swapped, or not stereo-calibrated?)")
    return float(baseline)


def needs_rectification(calib: CameraCalibration, topic: str, mode: str) -> bool:
    """Decide whether images on ``topic`` must be remapped.

    ``mode`` "always"/"never" force it; "auto" passes images through when the calibration
    has no distortion and no rotation, or when the topic is an image_proc output
    (``image_rect``…), whose CameraInfo still describes the raw camera.
    """
    if mode not in ("auto", "always", "never"):
        raise DataError(f"rectify must be 'auto', 'always' or 'never', got {mode!r}")
    if mode != "auto":
        return mode == "always"
    return not (calib.is_rectified() or "image_rect" in topic)
