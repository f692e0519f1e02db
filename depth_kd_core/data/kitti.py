"""KITTI raw: calibration, LiDAR ground truth, annotated depth and the dataset.

Calibration, LiDAR ground truth (Monodepth2-exact), annotated 16-bit PNG depth, and
:class:`KittiRawDataset` over split files.

Folder layout (as downloaded from https://www.cvlibs.net/datasets/kitti/raw_data.php, the
"synced+rectified" drives plus the per-date calibration zip)::

    <root>/2011_09_26/calib_cam_to_cam.txt
    <root>/2011_09_26/calib_velo_to_cam.txt
    <root>/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png   (left colour)
    <root>/2011_09_26/2011_09_26_drive_0001_sync/image_03/data/0000000000.png   (right colour)
    <root>/2011_09_26/2011_09_26_drive_0001_sync/velodyne_points/data/0000000000.bin

Images may also be ``.jpg`` (Monodepth2 converts them). The improved ground truth of the
depth-prediction benchmark (``data_depth_annotated.zip``) is laid out as
``<annotated_root>/{train,val}/<date>_drive_XXXX_sync/proj_depth/groundtruth/image_0{2,3}/
<frame:010d>.png``.

Split files list one sample per line, ``<date>/<drive folder> <frame index> <l|r>``, e.g.
``2011_09_26/2011_09_26_drive_0022_sync 473 r``. The standard lists are Monodepth2's
``splits/eigen_zhou/{train,val}_files.txt`` (Zhou et al. 2017 training split) and
``splits/eigen/test_files.txt`` (Eigen et al. 2014, 697 test images), in
https://github.com/nianticlabs/monodepth2/tree/master/splits; users download them.

Pixel convention: KITTI's calibration is 1-based like its MATLAB devkit (Monodepth2's
``generate_depth_map`` subtracts 1 after projecting); the intrinsics this module returns are
0-based (``cx = P[0, 2] - 1``), so K and the ground truth agree pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from depth_kd_core.data.camera import flip_intrinsics
from depth_kd_core.data.depth_png import read_depth_png
from depth_kd_core.data.schema import image_to_tensor, map_to_tensor
from depth_kd_core.data.transforms import resize_item
from depth_kd_core.errors import DataError

KITTI_FRAME_PERIOD_NS = 100_000_000  # 10 Hz drives (used when timestamps.txt is absent)
CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a KITTI calibration text file into ``{key: float64 array}``.

    Lines are ``key: v1 v2 ...``; entries that are not numbers (``calib_time``) are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"KITTI calibration file {path} cannot be read: {exc.strerror}") from exc
    data: dict[str, np.ndarray] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(f"{path}:{number}: expected 'key: values', got {line!r}")
        key, value = line.split(":", 1)
        try:
            data[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. calib_time: 09-Jan-2012 13:57:47
    return data


def _need(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib or calib[key].size != size:
        got = "missing" if key not in calib else f"{calib[key].size} values"
        raise DataError(f"{path}: key '{key}' must hold {size} numbers ({got})")
    return calib[key]


def load_velodyne_points(path: str | Path) -> np.ndarray:
    """N x 4 float32 velodyne points (x forward, y left, z up, metres); column 3 set to 1."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except OSError as exc:
        raise DataError(f"velodyne scan {path} cannot be read: {exc.strerror}") from exc
    if raw.size % 4:
        raise DataError(f"velodyne scan {path} holds {raw.size} floats, not a multiple of 4 "
                        f"(x, y, z, reflectance); the file is truncated")
    points = raw.reshape(-1, 4)
    points[:, 3] = 1.0  # homogeneous coordinate instead of reflectance
    return points


def generate_depth_map(calib_dir: str | Path, velo_path: str | Path, cam: int = 2,
                       vel_depth: bool = False) -> np.ndarray:
    """Project a velodyne scan into rectified camera ``cam`` exactly as Monodepth2 does.

    P = P_rect_0{cam} · R_rect_00 · Tr_velo_to_cam; points with velodyne x >= 0 are projected,
    pixel = round(u) - 1, round(v) - 1; the depth is the camera z (velodyne x when
    ``vel_depth``, as the Eigen test ground truth uses). Where several points land on one
    pixel the closest wins, with Monodepth2's ``sub2ind`` quirk (row·(W-1) + col - 1, so the
    last column of a row collides with the first of the next) kept for bit-exact ground truth.

    Returns:
        H x W float64 depth, metres, 0 = no return; H, W from ``S_rect_0{cam}``.
    """
    calib_dir = Path(calib_dir)
    cam2cam = read_calib_file(calib_dir / CAM_TO_CAM)
    velo2cam = read_calib_file(calib_dir / VELO_TO_CAM)
    tr = np.eye(4)
    tr[:3, :3] = _need(velo2cam, "R", 9, calib_dir / VELO_TO_CAM).reshape(3, 3)
    tr[:3, 3] = _need(velo2cam, "T", 3, calib_dir / VELO_TO_CAM)
    width, height = _need(cam2cam, f"S_rect_0{cam}", 2, calib_dir / CAM_TO_CAM).astype(np.int32)
    r_rect = np.eye(4)
    r_rect[:3, :3] = _need(cam2cam, "R_rect_00", 9, calib_dir / CAM_TO_CAM).reshape(3, 3)
    p_rect = _need(cam2cam, f"P_rect_0{cam}", 12, calib_dir / CAM_TO_CAM).reshape(3, 4)
    p_velo2im = p_rect @ r_rect @ tr

    velo = load_velodyne_points(velo_path)
    velo = velo[velo[:, 0] >= 0, :]
    pts = (p_velo2im @ velo.T).T
    pts[:, :2] = pts[:, :2] / pts[:, 2][..., None]
    if vel_depth:
        pts[:, 2] = velo[:, 0]
    pts[:, 0] = np.round(pts[:, 0]) - 1  # 1-based (MATLAB) calibration -> 0-based pixels
    pts[:, 1] = np.round(pts[:, 1]) - 1
    inside = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < width) & (pts[:, 1] < height)
    pts = pts[inside, :]
    rows, cols = pts[:, 1].astype(np.int64), pts[:, 0].astype(np.int64)
    depth = np.zeros((height, width))
    depth[rows, cols] = pts[:, 2]  # last write wins, then duplicates are resolved below
    inds = pts[:, 1] * (width - 1) + pts[:, 0] - 1  # Monodepth2's sub2ind, quirk included
    uniq, first, inverse, counts = np.unique(inds, return_index=True, return_inverse=True,
                                             return_counts=True)
    dupes = np.nonzero(counts > 1)[0]
    if dupes.size:
        mins = np.full(uniq.size, np.inf)
        np.minimum.at(mins, inverse.reshape(-1), pts[:, 2])
        depth[rows[first[dupes]], cols[first[dupes]]] = mins[dupes]  # at the first point's pixel
    depth[depth < 0] = 0
    return depth


class StereoCalib(NamedTuple):
    """Rectified stereo geometry of one KITTI date (cameras 2 and 3)."""

    K: np.ndarray  # 3 x 3 float64, 0-based pixels, rectified colour cameras
    focal: float  # fx, pixels
    baseline: float  # metres between cameras 2 and 3
    height: int
    width: int


def stereo_calibration(calib_dir: str | Path) -> StereoCalib:
    """Focal length and baseline from P_rect_02/P_rect_03 (P[0, 3] = -fx · t_x)."""
    path = Path(calib_dir) / CAM_TO_CAM
    cam2cam = read_calib_file(path)
    p2 = _need(cam2cam, "P_rect_02", 12, path).reshape(3, 4)
    p3 = _need(cam2cam, "P_rect_03", 12, path).reshape(3, 4)
    width, height = _need(cam2cam, "S_rect_02", 2, path).astype(int)
    K = p2[:, :3].copy()
    K[0, 2] -= 1.0  # 1-based -> 0-based
    K[1, 2] -= 1.0
    baseline = (p2[0, 3] - p3[0, 3]) / p2[0, 0]
    if baseline <= 0:
        raise DataError(f"{path}: P_rect_02/P_rect_03 give a baseline of {baseline:.4f} m; "
                        f"expected camera 3 to the right of camera 2")
    return StereoCalib(K, float(p2[0, 0]), float(baseline), int(height), int(width))


class KittiSample(NamedTuple):
    folder: str  # "<date>/<date>_drive_XXXX_sync"
    frame: int
    side: str  # "l" (camera 2) or "r" (camera 3)


def read_split_file(path: str | Path) -> list[KittiSample]:
    """Parse a Monodepth2-style split file (``<date>/<drive> <frame> <l|r>`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"KITTI split file {path} does not exist (see the kitti module "
                        f"docstring for where the Eigen/Zhou split lists come from)")
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("l", "r"):
            raise DataError(f"{path}:{number}: expected '<date>/<drive> <frame> <l|r>', "
                            f"got {line!r}")
        samples.append(KittiSample(parts[0], int(parts[1]), parts[2]))
    if not samples:
        raise DataError(f"KITTI split file {path} lists no samples")
    return samples


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"KITTI image {path} is not a readable image (corrupt or truncated)")
    return np.ascontiguousarray(bgr[..., ::-1])


class KittiRawDataset(Dataset):
    """The samples of a split file as items of the batch schema.

    Items hold ``left`` (camera 2; camera 3 for ``r`` samples), ``K`` (0-based, at the output
    size), ``stamp_ns`` (from ``image_0X/timestamps.txt`` when present, else frame x 100 ms)
    and ``index``; ``right`` and ``baseline`` when ``stereo``; ``depth_gt`` (metres, 0 =
    invalid) unless ``gt="none"``; ``prev``/``next`` (frames -1/+1 of the same camera) when
    ``sequence``. A stereo ``r`` sample is mirrored (as in SDFA-Net's flip mode): left =
    mirrored camera 3, right = mirrored camera 2, which in the mirror image is again a
    left/right pair with a positive baseline; its ground truth is camera 3's, mirrored.

    Args:
        root: folder holding the ``<date>`` folders (see the module docstring).
        split_file: Monodepth2-style split list.
        height, width: output size (all keys resized, K scaled); None keeps the raw size.
        stereo: load the other camera as ``right``.
        gt: "velodyne" (:func:`generate_depth_map`), "annotated" (16-bit PNGs under
            ``annotated_root``) or "none".
        annotated_root: the ``data_depth_annotated`` folder for ``gt="annotated"``.
        sequence: add ``prev``/``next``.
        transform: callable applied to each item (augmentations).
    """

    def __init__(self, root: str | Path, split_file: str | Path, *, height: int | None = None,
                 width: int | None = None, stereo: bool = True, gt: str = "velodyne",
                 annotated_root: str | Path = "", sequence: bool = False,
                 transform: Callable[[dict], dict] | None = None) -> None:
        if gt not in ("velodyne", "annotated", "none"):
            raise DataError(f"KITTI gt must be 'velodyne', 'annotated' or 'none', got {gt!r}")
        if gt == "annotated" and not annotated_root:
            raise DataError("KITTI gt='annotated' needs annotated_root (data_depth_annotated)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"KITTI root {self.root} is not a folder")
        self.samples = read_split_file(split_file)
        self.size = None if height is None or width is None else (int(height), int(width))
        self.stereo, self.gt, self.sequence = stereo, gt, sequence
        self.annotated_root = Path(annotated_root) if annotated_root else None
        self.transform = transform
        self._calib: dict[str, StereoCalib] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _calib_dir(self, folder: str) -> Path:
        return self.root / folder.split("/")[0]

    def _calibration(self, folder: str) -> StereoCalib:
        date = folder.split("/")[0]
        if date not in self._calib:
            self._calib[date] = stereo_calibration(self._calib_dir(folder))
        return self._calib[date]

    def _image(self, folder: str, cam: int, frame: int) -> np.ndarray:
        stem = self.root / folder / f"image_0{cam}" / "data" / f"{frame:010d}"
        for ext in (".png", ".jpg"):
            if stem.with_suffix(ext).is_file():
                return _read_rgb(stem.with_suffix(ext))
        raise DataError(f"KITTI image {stem}.png (or .jpg) does not exist")

    def _depth(self, sample: KittiSample, cam: int) -> np.ndarray:
        if self.gt == "velodyne":
            velo = (self.root / sample.folder / "velodyne_points" / "data" /
                    f"{sample.frame:010d}.bin")
            return generate_depth_map(self._calib_dir(sample.folder), velo, cam).astype(np.float32)
        drive = sample.folder.split("/")[-1]
        tail = Path(drive, "proj_depth", "groundtruth", f"image_0{cam}",
                    f"{sample.frame:010d}.png")
        for part in ("train", "val"):
            if (self.annotated_root / part / tail).is_file():
                return read_depth_png(self.annotated_root / part / tail)
        raise DataError(f"annotated depth {self.annotated_root}/{{train,val}}/{tail} does not "
                        f"exist; the annotated split covers only some frames")

    def _stamp(self, folder: str, cam: int, frame: int) -> int:
        stamps = self.root / folder / f"image_0{cam}" / "timestamps.txt"
        if stamps.is_file():
            lines = stamps.read_text().splitlines()
            if frame < len(lines):  # "2011-09-26 13:02:25.964389445"
                stamp = np.datetime64(lines[frame].strip().replace(" ", "T"), "ns")
                return int(stamp.astype(np.int64))
        return frame * KITTI_FRAME_PERIOD_NS

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for {len(self.samples)} samples")
        sample = self.samples[index]
        cam = 2 if sample.side == "l" else 3
        calib = self._calibration(sample.folder)
        left = self._image(sample.folder, cam, sample.frame)
        if left.shape[:2] != (calib.height, calib.width):
            raise DataError(f"KITTI image {sample.folder} frame {sample.frame} is "
                            f"{left.shape[1]}x{left.shape[0]} but S_rect_02 says "
                            f"{calib.width}x{calib.height}")
        item = {"left": image_to_tensor(left), "K": torch.from_numpy(calib.K).float(),
                "stamp_ns": torch.tensor(self._stamp(sample.folder, cam, sample.frame)),
                "index": torch.tensor(index, dtype=torch.int64)}
        if self.stereo:
            item["right"] = image_to_tensor(self._image(sample.folder, 5 - cam, sample.frame))
            item["baseline"] = torch.tensor(calib.baseline, dtype=torch.float32)
        if self.gt != "none":
            item["depth_gt"] = map_to_tensor(self._depth(sample, cam))
        if self.sequence:
            item["prev"] = image_to_tensor(self._image(sample.folder, cam, sample.frame - 1))
            item["next"] = image_to_tensor(self._image(sample.folder, cam, sample.frame + 1))
        if self.stereo and cam == 3:
            item = _mirror(item)
        if self.size is not None:
            item = resize_item(item, *self.size)
        return self.transform(item) if self.transform else item


def _mirror(item: dict) -> dict:
    """Mirror a camera-3 sample (left = camera 3, right = camera 2, which sits to its left).

    In the mirror image camera 2 is to the right, so the pair has a positive baseline.
    """
    out = {k: (v.flip(-1).contiguous() if torch.is_tensor(v) and v.ndim == 3 else v)
           for k, v in item.items()}
    out["K"] = flip_intrinsics(item["K"], item["left"].shape[-1])
    return out
