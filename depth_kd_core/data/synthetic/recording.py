"""The synthetic world recorded as data: a bag or the KITTI raw layout.

A drive as a rosbag2 (mcap, sqlite3) / ROS 1 bag, and as the KITTI raw layout. Used by tests,
the demo and benchmarks; outputs are written atomically.

    write_synthetic_bag(tmp / "drive", SyntheticWorld(0, 96, 320), 20, storage="mcap")
    write_synthetic_kitti(tmp / "kitti", SyntheticWorld(0, 96, 320), 5)

The messages themselves are written by ``bags/writer.py``; KITTI files are read back by
``kitti.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from depth_kd_core.data.bags.writer import BagTopics, BagWriter, RawRig, rig_matrices, write_frame
from depth_kd_core.data.camera import axis_angle_rotation
from depth_kd_core.data.depth_png import write_depth_png
from depth_kd_core.data.synthetic.world import MAX_SEQUENCE_LENGTH, SyntheticWorld
from depth_kd_core.fileio import atomic_dir, atomic_path, atomic_write_text

BAG_START_NS = 1_700_000_000 * 10**9  # an arbitrary, realistic epoch for synthetic stamps


def _render(world: SyntheticWorld, n_frames: int, first_scene: int, frames_per_scene: int,
            stereo: bool, progress: bool) -> list[dict]:
    """Frames of consecutive scenes, ``frames_per_scene`` each."""
    return [world.frame(first_scene + n // frames_per_scene, n % frames_per_scene,
                        stereo=stereo) for n in tqdm(range(n_frames), desc="rendering",
                                                     disable=not progress)]


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
    frames = _render(world, n_frames, first_scene, frames_per_scene, stereo, progress)
    rig = rig_matrices(world.K, world.baseline, raw)
    context = atomic_path(path) if storage == "ros1" else atomic_dir(path)
    with context as tmp:
        if storage == "ros1":
            tmp.unlink()  # the ROS 1 writer refuses to overwrite the placeholder
        bag = BagWriter(tmp, storage)
        try:
            for rep in range(repeat):
                for n, frame in enumerate(frames):
                    k = rep * n_frames + n
                    stamp = start_ns + period * (k + scene_gap_frames * (k // frames_per_scene))
                    write_frame(bag, frame, stamp, right_delay_ns, topics, rig,
                                (world.height, world.width), compressed, encoding, jpeg_quality,
                                stereo and k not in skip_right, with_depth, depth_encoding,
                                with_lidar)
        finally:
            bag.close()
    return path


# ----------------------------------------------------------------------------- KITTI

# Made-up but plausible rig geometry in KITTI's conventions (camera 2 sits 6 cm from the
# rectified reference camera 0; velodyne x forward, y left, z up, mounted above the cameras).
SYN_CAM2_OFFSET_M = 0.06
SYN_R_RECT_00 = axis_angle_rotation(0.003, -0.004, 0.002)
SYN_R_VELO_TO_CAM = (axis_angle_rotation(0.01, -0.008, 0.005)
                     @ np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]]))
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
