"""``DataCfg``: where training and validation data come from, and how it is prepared.

The ``data`` section of a training config. ``source`` picks one of the three sub-sections;
the others are ignored. A recipe states which batch keys it needs (``right``, ``prev``/``next``,
``depth_gt``, ``semantics`` …) and the dataset builder provides them or fails naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from depth_kd_core.config_build import bounded


@dataclass
class AugmentCfg:
    """Training augmentations (all keep K and baseline consistent)."""

    enabled: bool = True
    # horizontal flip; stereo pairs swap left/right (SDFA flip mode)
    flip_prob: float = bounded(0.5, ge=0, le=1)
    color_prob: float = bounded(0.5, ge=0, le=1)  # colour jitter probability
    brightness: float = bounded(0.1, ge=0, le=1)  # factor drawn from [1 - b, 1 + b]
    contrast: float = bounded(0.1, ge=0, le=1)
    saturation: float = bounded(0.1, ge=0, le=1)
    hue: float = bounded(0.0, ge=0, le=0.5)
    gamma: float = bounded(0.0, ge=0, lt=1)  # img ** g, g in [1 - gamma, 1 + gamma] (0 = off)
    # random resize before cropping (SDFA 0.75-1.5)
    scale_range: tuple[float, float] = bounded((1.0, 1.0), gt=0)


@dataclass
class SyntheticSourceCfg:
    """The procedural stereo world (``depth_kd_core.data.synthetic``)."""

    seed: int = 0  # training scenes come from this seed
    scenes: int = bounded(256, ge=1)  # training items (one scene each)
    val_seed: int = 1000  # held-out scenes come from a different seed
    val_scenes: int = bounded(16, ge=1)
    gt: Literal["dense", "lidar"] = "lidar"  # supervision: sparse LiDAR (KITTI-like) or dense
    noise_std: float = bounded(0.0, ge=0)  # pixel noise, 0-255 units
    # stereo baseline of the rig, metres (KITTI: 0.54). At a fraction of KITTI's resolution a
    # wider rig gives stereo its full-resolution disparities back (pixels scale with W * B).
    baseline: float = bounded(0.54, gt=0)
    cache: bool = True  # keep rendered training frames in memory after the first epoch


@dataclass
class KittiSourceCfg:
    """KITTI raw drives (``depth_kd_core.data.kitti``)."""

    root: str = ""  # folder holding <date>/<date>_drive_XXXX_sync and per-date calib files
    train_split: str = ""  # text file, one "<date>/<drive> <frame> <l|r>" line per sample
    val_split: str = ""
    gt: Literal["velodyne", "annotated"] = "velodyne"
    annotated_root: str = ""  # data_depth_annotated folder for gt=annotated
    stereo: bool = True  # load the right image too


@dataclass
class RosbagSourceCfg:
    """Recorded bags: rosbag2 (mcap, sqlite3) or ROS 1 (``data/bags/datasets.py``)."""

    path: str = ""  # bag file or rosbag2 folder
    val_path: str = ""  # separate validation bag; empty = last val_fraction of ``path``
    val_fraction: float = bounded(0.1, ge=0, lt=1)
    left_topic: str = "/stereo/left/image_rect"
    right_topic: str = "/stereo/right/image_rect"  # empty for a monocular bag
    left_info_topic: str = "/stereo/left/camera_info"  # mono: "" = <namespace>/camera_info
    right_info_topic: str = "/stereo/right/camera_info"
    depth_topic: str = ""  # optional ground truth (16UC1 mm or 32FC1 m)
    sync_tolerance_ms: float = bounded(5.0, ge=0)  # left/right stamps closer than this are a pair
    # auto: remap raw images unless D = 0 and R = I, or the topic is an image_rect output
    rectify: Literal["auto", "always", "never"] = "auto"
    cache_dir: str = ""  # where the message index is cached (default: beside the bag)
    # video triples: max gap to a neighbour (0 = 2.5 x median period)
    max_gap_ms: float = bounded(0.0, ge=0)


@dataclass
class DataCfg:
    """The ``data`` section of a training config."""

    source: Literal["synthetic", "kitti", "rosbag"] = "synthetic"
    # network input size, pixels (images are resized/cropped to it); 0 keeps the native size
    # (KITTI and bags; evaluation at GT resolution)
    height: int = bounded(96, ge=0, hint="pixels; 0 keeps the native size")
    width: int = bounded(320, ge=0, hint="pixels; 0 keeps the native size")
    # Resize items to resize_height x resize_width first, then crop height x width (random in
    # training, centred in validation): the papers' "random crop" (DACNN 256x512, TIE-KD
    # 352x704). Inference then runs on whole images at the resize size. 0 = no crop step.
    resize_height: int = bounded(0, ge=0)
    resize_width: int = bounded(0, ge=0)
    batch_size: int = bounded(4, ge=1)
    val_batch_size: int = bounded(4, ge=1)
    num_workers: int = bounded(0, ge=0)
    # replace an unreadable item (bad frame, damaged chunk) by the next good one, with a
    # warning naming it and the count reported at the end, instead of stopping the run
    skip_bad_frames: bool = False
    # folder of precomputed teacher depth for the training items (``teacher_depth``, read by
    # the precomputed_teacher model), written by python -m depth_kd_core.precompute_teacher;
    # "" = none
    teacher_depth_dir: str = ""
    augment: AugmentCfg = field(default_factory=AugmentCfg)
    synthetic: SyntheticSourceCfg = field(default_factory=SyntheticSourceCfg)
    kitti: KittiSourceCfg = field(default_factory=KittiSourceCfg)
    rosbag: RosbagSourceCfg = field(default_factory=RosbagSourceCfg)
