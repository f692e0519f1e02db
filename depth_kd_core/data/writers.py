"""Write the synthetic world as recorded data: rosbag2 (mcap, sqlite3) / ROS 1 bags and the
KITTI raw layout. Used by tests, the demo and benchmarks; outputs are written atomically.

    write_synthetic_bag(tmp / "drive", SyntheticWorld(0, 96, 320), 20, storage="mcap")
    write_synthetic_kitti(tmp / "kitti", SyntheticWorld(0, 96, 320), 5)
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
from tqdm import tqdm

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.kitti import write_depth_png
from depth_kd_core.data.synthetic.world import MAX_SEQUENCE_LENGTH, SyntheticWorld
from depth_kd_core.fileio import atomic_dir, atomic_path, atomic_write_text

BAG_START_NS = 1_700_000_000 * 10**9  # an arbitrary, realistic epoch for synthetic stamps
RECORD_LATENCY_NS = 2_000_000  # log time = header stamp + 2 ms, as a recorder would see it


@dataclass(frozen=True)
class BagTopics:
    """Topic names written by :func:`write_synthetic_bag` (defaults = ``RosbagSourceCfg``)."""

    left: str = "/stereo/left/image_rect"
    right: str = "/stereo/right/image_rect"
    left_info: str = "/stereo/left/camera_info"
    right_info: str = "/stereo/right/camera_info"
    depth: str = "/stereo/left/depth"
    lidar: str = "/lidar/depth"


def _rot(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation from small angles (radians) about x, y, z."""
    return cv2.Rodrigues(np.array([rx, ry, rz], dtype=np.float64))[0]


class RawRig(NamedTuple):
    """Distortion and rectifying rotations that make 'raw' images out of rectified ones."""

    D: tuple[float, ...] = (-0.12, 0.05, 0.0008, -0.0005, 0.0)  # plumb_bob k1 k2 p1 p2 k3
    left_angles: tuple[float, float, float] = (0.004, -0.006, 0.002)
    right_angles: tuple[float, float, float] = (-0.003, 0.005, -0.002)


class _Bag:
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


def _camera_info(bag: _Bag, hdr: Any, K: np.ndarray, h: int, w: int, D: np.ndarray,
                 R: np.ndarray, P: np.ndarray) -> dict[str, Any]:
    roi = bag.ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    names = ("D", "K", "R", "P") if bag.ros1 else ("d", "k", "r", "p")
    mats = dict(zip(names, (D, K.reshape(-1), R.reshape(-1), P.reshape(-1))))
    mats = {k: np.asarray(v, dtype=np.float64) for k, v in mats.items()}
    return dict(header=hdr, height=h, width=w, distortion_model="plumb_bob", binning_x=0,
                binning_y=0, roi=roi, **mats)


def distort_to_raw(rect: np.ndarray, K: np.ndarray, D: np.ndarray, R: np.ndarray,
                   P: np.ndarray, nearest: bool = False) -> np.ndarray:
    """The raw (distorted, unrotated) image whose rectification with (K, D, R, P) is ``rect``."""
    h, w = rect.shape[:2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    raw_px = np.stack([u.ravel(), v.ravel()], axis=1)[:, None, :]
    rect_px = cv2.undistortPoints(raw_px, K, D, R=R, P=P).reshape(h, w, 2)
    return cv2.remap(rect, rect_px[..., 0], rect_px[..., 1],
                     cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)


def _image_fields(rgb: np.ndarray, compressed: bool | str, encoding: str, quality: int) -> dict:
    if compressed:
        fmt = "png" if compressed == "png" else "jpeg"
        return mc.compressed_fields(rgb, fmt, encoding="rgb8", quality=quality)
    converted = {"rgb8": rgb, "bgr8": rgb[..., ::-1],
                 "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)}[encoding]
    return mc.image_fields(np.ascontiguousarray(converted), encoding)


def write_synthetic_bag(path: str | Path, world: SyntheticWorld, n_frames: int, *,
                        storage: str = "mcap", compressed: bool | str = False,
                        encoding: str = "rgb8", stereo: bool = True, with_depth: bool = True,
                        depth_encoding: str = "32FC1", with_lidar: bool = False,
                        topics: BagTopics = BagTopics(), raw: RawRig | None = None,
                        fps: float = 10.0, start_ns: int = BAG_START_NS,
                        right_delay_ns: int = 0, frames_per_scene: int = MAX_SEQUENCE_LENGTH,
                        first_scene: int = 0, scene_gap_frames: int = 5, repeat: int = 1,
                        skip_right: tuple[int, ...] = (), jpeg_quality: int = 95,
                        progress: bool = False) -> Path:
    """Render ``n_frames`` of driving and record them as a bag.

    Frames come from consecutive scenes, ``frames_per_scene`` frames each, with a pause of
    ``scene_gap_frames`` frame periods between scenes (so video triples never straddle a
    cut). ``repeat`` writes the rendered frames that many times with fresh stamps (cheap long
    bags for benchmarks).

    Args:
        path: rosbag2 folder to create (``storage`` "mcap"/"sqlite3") or ``.bag`` file ("ros1").
        compressed: False for sensor_msgs/Image in ``encoding`` (rgb8, bgr8, mono8); True or
            "jpeg"/"png" for CompressedImage.
        stereo: also record the right camera and its CameraInfo.
        with_depth: dense depth of the left view on ``topics.depth`` (``depth_encoding``
            32FC1 metres or 16UC1 millimetres); ``with_lidar``: sparse LiDAR depth (32FC1)
            registered to the left view on ``topics.lidar``.
        raw: record distorted, unrectified images with the CameraInfo (D, K, R, P) that
            rectifies them; None records rectified images (D = 0, R = I).
        right_delay_ns: added to the right camera's header stamps (sync tests).
        skip_right: frame numbers whose right image is not recorded (dropped frames).

    Returns:
        ``path``; an existing bag there is replaced only once the new one is complete.
    """
    path = Path(path)
    if storage not in ("mcap", "sqlite3", "ros1"):
        raise ValueError(f"storage must be 'mcap', 'sqlite3' or 'ros1', got {storage!r}")
    if storage == "ros1" and path.suffix != ".bag":
        raise ValueError(f"a ROS 1 bag path must end in .bag, got {path}")
    period = int(round(1e9 / fps))
    frames = [world.frame(first_scene + n // frames_per_scene, n % frames_per_scene,
                          stereo=stereo) for n in tqdm(range(n_frames), desc="rendering",
                                                       disable=not progress)]
    K, h, w, B = world.K, world.height, world.width, world.baseline
    rig = _rig(K, B, raw)
    context = atomic_path(path) if storage == "ros1" else atomic_dir(path)
    with context as tmp:
        if storage == "ros1":
            tmp.unlink()  # the ROS 1 writer refuses to overwrite the placeholder
        bag = _Bag(tmp, storage)
        try:
            for rep in range(repeat):
                for n, frame in enumerate(frames):
                    k = rep * n_frames + n
                    stamp = start_ns + period * (k + scene_gap_frames * (k // frames_per_scene))
                    _write_frame(bag, frame, stamp, right_delay_ns, topics, rig, (h, w),
                                 compressed, encoding, jpeg_quality,
                                 stereo and k not in skip_right, with_depth, depth_encoding,
                                 with_lidar)
        finally:
            bag.close()
    return path


def _rig(K: np.ndarray, B: float, raw: RawRig | None) -> dict[str, np.ndarray]:
    """CameraInfo matrices of the left and right cameras."""
    P_left = np.hstack([K, np.zeros((3, 1))])
    P_right = P_left.copy()
    P_right[0, 3] = -K[0, 0] * B  # REP 104: Tx = -fx * B
    if raw is None:
        zero, eye = np.zeros(5), np.eye(3)
        return {"D": zero, "R_left": eye, "R_right": eye, "P_left": P_left, "P_right": P_right,
                "raw": False}
    return {"D": np.asarray(raw.D, np.float64), "R_left": _rot(*raw.left_angles),
            "R_right": _rot(*raw.right_angles), "P_left": P_left, "P_right": P_right, "raw": True}


def _write_frame(bag: _Bag, frame: dict, stamp: int, right_delay_ns: int, topics: BagTopics,
                 rig: dict, size: tuple[int, int], compressed: bool | str, encoding: str,
                 quality: int, stereo: bool, with_depth: bool, depth_encoding: str,
                 with_lidar: bool) -> None:
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
                  t + RECORD_LATENCY_NS, **_camera_info(bag, hdr, K, h, w, rig["D"], R, P))
    for wanted, topic, key, enc in ((with_depth, topics.depth, "depth", depth_encoding),
                                    (with_lidar, topics.lidar, "lidar_depth", "32FC1")):
        if wanted:
            depth = frame[key]
            if rig["raw"]:
                depth = distort_to_raw(depth, K, rig["D"], rig["R_left"], rig["P_left"][:, :3],
                                       nearest=True)
            bag.write(topic, "sensor_msgs/msg/Image", stamp + RECORD_LATENCY_NS,
                      header=bag.header(stamp, "camera_left"), **mc.depth_image_fields(depth, enc))


# ----------------------------------------------------------------------------- KITTI

# Made-up but plausible rig geometry in KITTI's conventions (camera 2 sits 6 cm from the
# rectified reference camera 0; velodyne x forward, y left, z up, mounted above the cameras).
SYN_CAM2_OFFSET_M = 0.06
SYN_R_RECT_00 = _rot(0.003, -0.004, 0.002)
SYN_R_VELO_TO_CAM = _rot(0.01, -0.008, 0.005) @ np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])
SYN_T_VELO_TO_CAM = np.array([-0.004, -0.076, -0.27])


class KittiLayout(NamedTuple):
    root: Path  # holds <date>/...
    drive_dir: Path  # <root>/<date>/<date>_drive_XXXX_sync
    split_file: Path  # frames 1 .. n-2, both sides (every sample has prev/next)
    annotated_root: Path | None  # data_depth_annotated-style folder, or None


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in np.asarray(values, dtype=np.float64).reshape(-1))


def kitti_calib_text(K: np.ndarray, baseline: float, height: int, width: int) -> tuple[str, str]:
    """(calib_cam_to_cam.txt, calib_velo_to_cam.txt) for a rectified rig with 0-based ``K``."""
    K1 = K.copy()
    K1[0, 2] += 1.0  # KITTI calibration is 1-based (MATLAB devkit)
    K1[1, 2] += 1.0
    lines = ["calib_time: 01-Jan-2024 00:00:00", "corner_dist: 9.950000e-02"]
    for cam, tx in ((0, 0.0), (1, -baseline), (2, SYN_CAM2_OFFSET_M),
                    (3, SYN_CAM2_OFFSET_M - baseline)):
        P = K1 @ np.hstack([np.eye(3), [[tx], [0.0], [0.0]]])
        lines += [f"S_0{cam}: {_fmt([width, height])}", f"K_0{cam}: {_fmt(K1)}",
                  f"D_0{cam}: {_fmt(np.zeros(5))}", f"R_0{cam}: {_fmt(np.eye(3))}",
                  f"T_0{cam}: {_fmt([tx, 0, 0])}", f"S_rect_0{cam}: {_fmt([width, height])}",
                  f"R_rect_0{cam}: {_fmt(SYN_R_RECT_00 if cam == 0 else np.eye(3))}",
                  f"P_rect_0{cam}: {_fmt(P)}"]
    velo = ["calib_time: 01-Jan-2024 00:00:00", f"R: {_fmt(SYN_R_VELO_TO_CAM)}",
            f"T: {_fmt(SYN_T_VELO_TO_CAM)}", "delta_f: 0 0", "delta_c: 0 0"]
    return "\n".join(lines) + "\n", "\n".join(velo) + "\n"


def depth_to_velodyne(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Back-project camera-2 depth (H x W metres, 0 = none) to N x 4 float32 velodyne points.

    Inverts :func:`generate_depth_map` for the synthetic calibration: each point projects
    back onto the pixel it came from with its depth.
    """
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float64)
    cam2 = np.linalg.inv(K) @ np.stack([u * 1.0, v * 1.0, np.ones_like(z)]) * z
    rect0 = cam2 - np.array([[SYN_CAM2_OFFSET_M], [0.0], [0.0]])
    cam0 = SYN_R_RECT_00.T @ rect0
    velo = SYN_R_VELO_TO_CAM.T @ (cam0 - SYN_T_VELO_TO_CAM[:, None])
    return np.vstack([velo, np.full((1, z.size), 0.5)]).T.astype(np.float32)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def write_synthetic_kitti(root: str | Path, world: SyntheticWorld, n_frames: int = 5, *,
                          scene: int = 0, date: str = "2011_09_26", drive: int = 1,
                          annotated: bool = True) -> KittiLayout:
    """Record ``n_frames`` (<= 20) of one synthetic drive in the KITTI raw layout.

    Writes images (image_02 left, image_03 right, with timestamps.txt), velodyne scans
    back-projected from the world's LiDAR depth, the per-date calibration files, optionally
    annotated 16-bit depth PNGs (dense rendered depth of both cameras) and a split file.
    The date folder is written atomically.
    """
    if not 3 <= n_frames <= MAX_SEQUENCE_LENGTH:
        raise ValueError(f"n_frames must be in [3, {MAX_SEQUENCE_LENGTH}], got {n_frames}")
    root = Path(root)
    drive_name = f"{date}_drive_{drive:04d}_sync"
    frames = world.sequence(scene, n_frames)
    cam2cam, velo2cam = kitti_calib_text(world.K, world.baseline, world.height, world.width)
    stamps = "\n".join(f"2011-09-26 13:02:{25 + 0.1 * k:012.9f}" for k in range(n_frames))
    with atomic_dir(root / date) as tmp:
        (tmp / drive_name).mkdir(parents=True)
        (tmp / "calib_cam_to_cam.txt").write_text(cam2cam)
        (tmp / "calib_velo_to_cam.txt").write_text(velo2cam)
        for k, frame in enumerate(frames):
            for cam, key in ((2, "left"), (3, "right")):
                _write_png(tmp / drive_name / f"image_0{cam}" / "data" / f"{k:010d}.png",
                           frame[key])
            scan = tmp / drive_name / "velodyne_points" / "data" / f"{k:010d}.bin"
            scan.parent.mkdir(parents=True, exist_ok=True)
            depth_to_velodyne(frame["lidar_depth"], world.K).tofile(scan)
        for cam in (2, 3):
            (tmp / drive_name / f"image_0{cam}" / "timestamps.txt").write_text(stamps + "\n")
    annotated_root = None
    if annotated:
        annotated_root = root / "data_depth_annotated"
        with atomic_dir(annotated_root) as tmp:
            for k, frame in enumerate(frames):
                for cam, key in ((2, "depth"), (3, "depth_right")):
                    write_depth_png(tmp / "train" / drive_name / "proj_depth" / "groundtruth" /
                                    f"image_0{cam}" / f"{k:010d}.png", frame[key])
    lines = [f"{date}/{drive_name} {k} {side}" for side in "lr" for k in range(1, n_frames - 1)]
    split = root / "splits" / f"{date}_drive_{drive:04d}.txt"
    atomic_write_text(split, "\n".join(lines) + "\n")
    return KittiLayout(root, root / date / drive_name, split, annotated_root)
