"""Recorded bags as training data, over rosbag2 (mcap, sqlite3) and ROS 1 bags.

:class:`StereoBagDataset`, :class:`MonoBagDataset` and :class:`SequenceBagDataset` (frames
t-1, t, t+1).

Items follow the batch schema (``schema.py``): ``left`` (and ``right``) 3 x H x W float32 in
[0, 1], ``K`` 3 x 3 float32 at the item size, ``baseline`` metres (stereo), ``stamp_ns`` (left
header stamp), ``index``; ``depth_gt`` (metres, 0 = invalid) when a 16UC1/32FC1 depth topic
is given; ``prev``/``next`` for sequences.

Pipeline per item: fetch messages by their indexed address -> decode (``codec``) ->
rectify with CameraInfo (D, K, R, P) when the images are raw -> resize (K follows). The index
is scanned once and cached (``index``); each DataLoader worker opens its own reader.

    ds = StereoBagDataset("drive.mcap", "/left/image_raw", "/right/image_raw",
                          "/left/camera_info", "/right/camera_info", height=192, width=640)
    print(ds.sync_report)   # matched / unmatched / dropped counts
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from depth_kd_core.data.bags import index as bi
from depth_kd_core.data.bags.codec import msg_to_rgb8
from depth_kd_core.data.bags.dataset_base import (
    DEPTH,
    DEPTH_TYPES,
    LEFT,
    NEXT,
    PREV,
    RIGHT,
    BagDatasetBase,
    guess_info_topic,
)
from depth_kd_core.data.camera import stereo_baseline
from depth_kd_core.errors import BagError


class MonoBagDataset(BagDatasetBase):
    """One camera topic (Image or CompressedImage) as monocular items.

    Args:
        path: bag file (``.mcap``, ``.db3``, ``.bag``) or rosbag2 folder.
        image_topic: the camera's image topic.
        info_topic: its CameraInfo topic; None looks for ``<namespace>/camera_info``.
        K: 3 x 3 intrinsics at the recorded image size, for bags without CameraInfo.
        depth_topic: optional ground-truth depth (16UC1 mm / 32FC1 m) registered to the image.
        height, width: output size (None keeps the recorded size).
        sequence: add ``prev``/``next`` (neighbouring frames no more than ``max_gap_ms``
            apart; default 2.5 x the median frame period).
        sync_tolerance_ms: how close a depth stamp must be to its image's.
        rectify: "auto", "always" or "never" (see ``camera.needs_rectification``).
        cache_dir: where the index is cached (default beside the bag).
        transform: callable applied to each item (augmentations).
        progress: show a progress bar while indexing.
    """

    def __init__(self, path: str | Path, image_topic: str, info_topic: str | None = None, *,
                 K: np.ndarray | None = None, depth_topic: str = "", height: int | None = None,
                 width: int | None = None, sequence: bool = False,
                 max_gap_ms: float | None = None, sync_tolerance_ms: float = 5.0,
                 rectify: str = "auto", cache_dir: str | Path | None = None,
                 transform: Callable | None = None, progress: bool = True) -> None:
        super().__init__(path, height=height, width=width, rectify=rectify,
                         cache_dir=cache_dir, transform=transform, progress=progress)
        self.image_topic, self.depth_topic, self.dropped = image_topic, depth_topic, {}
        self.main_topic = image_topic
        if info_topic is None and K is None:
            info_topic = guess_info_topic(image_topic, self.bag.topics())
            if info_topic is None:
                raise BagError(f"camera_info missing: no CameraInfo topic for '{image_topic}' "
                               f"in {self.path} and no K given; topics in the bag: "
                               f"{self.bag.describe_topics()}")
        self.info_topic = info_topic
        wanted = {image_topic: bi.IMAGE_TYPES}
        if info_topic:
            wanted[info_topic] = (bi.CAMERA_INFO,)
        if depth_topic:
            wanted[depth_topic] = DEPTH_TYPES
        self._scan(wanted)
        n = len(self.topics[image_topic])
        rows = np.full((n, 5), -1, dtype=np.int64)
        rows[:, LEFT] = np.argsort(self.topics[image_topic].stamp_ns, kind="stable")
        if depth_topic:
            rows = self._with_depth(rows, depth_topic, sync_tolerance_ms,
                                    f"an image on '{image_topic}'")
        if sequence:
            rows = self._add_sequence(rows, image_topic, max_gap_ms)
        self.rows = rows
        first = msg_to_rgb8(self._fetch(rows[0], {LEFT: image_topic})[LEFT],
                            self._src(image_topic))
        self.native = first.shape[:2]
        if info_topic:
            self.K_native = self._setup_camera(image_topic, self._calibration(info_topic),
                                               self.native)
        else:
            self.K_native = np.asarray(K, dtype=np.float64).reshape(3, 3)
            self._setup_camera(image_topic, None, self.native)

    def _item(self, index: int) -> dict:
        row = self.rows[index]
        cols = {LEFT: self.image_topic, PREV: self.image_topic, NEXT: self.image_topic}
        if self.depth_topic:
            cols[DEPTH] = self.depth_topic
        msgs = self._fetch(row, cols)
        images = {"left": self._image(msgs[LEFT], self.image_topic)}
        if row[PREV] >= 0:
            images["prev"] = self._image(msgs[PREV], self.image_topic)
            images["next"] = self._image(msgs[NEXT], self.image_topic)
        depth = self._depth(msgs[DEPTH], self.depth_topic, self.image_topic) \
            if self.depth_topic else None
        stamp = int(self.topics[self.image_topic].stamp_ns[row[LEFT]])
        return self._finish(images, depth, {"stamp_ns": torch.tensor(stamp, dtype=torch.int64),
                                            "index": torch.tensor(index, dtype=torch.int64)})


class SequenceBagDataset(MonoBagDataset):
    """:class:`MonoBagDataset` with ``prev``/``next`` (frames t-1, t, t+1) for video training."""

    def __init__(self, path: str | Path, image_topic: str, info_topic: str | None = None,
                 **kwargs) -> None:
        kwargs.setdefault("sequence", True)
        super().__init__(path, image_topic, info_topic, **kwargs)



class StereoBagDataset(BagDatasetBase):
    """A stereo camera pair, synchronised by header stamp, as stereo items.

    Focal length and baseline come from the right camera's projection (``P[0, 3] = -fx B``);
    raw images are rectified with each camera's CameraInfo. :attr:`sync_report` holds the
    matched / unmatched / dropped counts.

    Args:
        path: bag file (``.mcap``, ``.db3``, ``.bag``) or rosbag2 folder.
        left_topic, right_topic: image topics (Image or CompressedImage).
        left_info_topic, right_info_topic: their CameraInfo topics.
        depth_topic: optional ground truth of the left view (16UC1 mm / 32FC1 m).
        height, width: output size (None keeps the recorded size).
        sync_tolerance_ms: left/right (and depth) stamps closer than this are matched.
        sequence: add ``prev``/``next`` of the left camera (see :class:`MonoBagDataset`).
        max_gap_ms, rectify, cache_dir, transform, progress: as in :class:`MonoBagDataset`.
    """

    def __init__(self, path: str | Path, left_topic: str, right_topic: str,
                 left_info_topic: str, right_info_topic: str, *, depth_topic: str = "",
                 height: int | None = None, width: int | None = None,
                 sync_tolerance_ms: float = 5.0, sequence: bool = False,
                 max_gap_ms: float | None = None, rectify: str = "auto",
                 cache_dir: str | Path | None = None, transform: Callable | None = None,
                 progress: bool = True) -> None:
        super().__init__(path, height=height, width=width, rectify=rectify,
                         cache_dir=cache_dir, transform=transform, progress=progress)
        self.left_topic, self.right_topic, self.depth_topic = left_topic, right_topic, depth_topic
        self.main_topic = left_topic
        self.dropped: dict[str, int] = {}
        if left_topic == right_topic or left_info_topic == right_info_topic:
            raise BagError(f"bag {self.path}: left and right must be different topics, got "
                           f"'{left_topic}'/'{right_topic}' and '{left_info_topic}'/"
                           f"'{right_info_topic}'")
        wanted = {left_topic: bi.IMAGE_TYPES, right_topic: bi.IMAGE_TYPES,
                  left_info_topic: (bi.CAMERA_INFO,), right_info_topic: (bi.CAMERA_INFO,)}
        if depth_topic:
            wanted[depth_topic] = DEPTH_TYPES
        self._scan(wanted)
        tol = int(sync_tolerance_ms * 1e6)
        left, right = self.topics[left_topic].stamp_ns, self.topics[right_topic].stamp_ns
        pairs, self.sync_report = bi.sync_stamps(left, right, tol)
        if self.sync_report.matched == 0:
            gap = bi.closest_offset_ns(left, right)
            raise BagError(f"nothing synchronised in {self.path}: no '{left_topic}' and "
                           f"'{right_topic}' stamps are within {sync_tolerance_ms} ms (closest: "
                           f"{gap / 1e6:.3f} ms); raise the sync tolerance if the cameras are "
                           f"not hardware-triggered")
        rows = np.full((len(pairs), 5), -1, dtype=np.int64)
        rows[:, LEFT], rows[:, RIGHT] = pairs[:, 0], pairs[:, 1]
        if depth_topic:
            rows = self._with_depth(rows, depth_topic, sync_tolerance_ms, "a stereo pair")
        if sequence:
            rows = self._add_sequence(rows, left_topic, max_gap_ms)
        self.rows = rows
        self._setup_pair(left_info_topic, right_info_topic)

    def _setup_pair(self, left_info: str, right_info: str) -> None:
        """Validate the first pair (sizes) and derive K and the baseline."""
        msgs = self._fetch(self.rows[0], {LEFT: self.left_topic, RIGHT: self.right_topic})
        first_l = msg_to_rgb8(msgs[LEFT], self._src(self.left_topic))
        first_r = msg_to_rgb8(msgs[RIGHT], self._src(self.right_topic))
        self.native = first_l.shape[:2]
        self._check_pair_size(first_l.shape, first_r.shape)
        self.K_native = self._setup_camera(self.left_topic, self._calibration(left_info),
                                           self.native)
        K_right = self._setup_camera(self.right_topic, self._calibration(right_info),
                                     self.native)
        if abs(K_right[0, 0] - self.K_native[0, 0]) > 0.01 * self.K_native[0, 0]:
            raise BagError(f"bag {self.path}: rectified focal lengths differ (left "
                           f"{self.K_native[0, 0]:.2f}, right {K_right[0, 0]:.2f} px); the "
                           f"CameraInfo P matrices are not a rectified stereo pair")
        self.baseline = stereo_baseline(self.calib[self.left_topic],
                                        self.calib[self.right_topic], f"bag {self.path}")

    def _check_pair_size(self, left: tuple, right: tuple) -> None:
        if left[:2] != right[:2]:
            raise BagError(f"bag {self.path}: left/right size mismatch: '{self.left_topic}' is "
                           f"{left[1]}x{left[0]} but '{self.right_topic}' is "
                           f"{right[1]}x{right[0]}")

    def _item(self, index: int) -> dict:
        row = self.rows[index]
        cols = {LEFT: self.left_topic, RIGHT: self.right_topic, PREV: self.left_topic,
                NEXT: self.left_topic}
        if self.depth_topic:
            cols[DEPTH] = self.depth_topic
        msgs = self._fetch(row, cols)
        right = msg_to_rgb8(msgs[RIGHT], self._src(self.right_topic))
        self._check_pair_size(self.native, right.shape)
        images = {"left": self._image(msgs[LEFT], self.left_topic),
                  "right": self._prepare(right, self.right_topic)}
        if row[PREV] >= 0:
            images["prev"] = self._image(msgs[PREV], self.left_topic)
            images["next"] = self._image(msgs[NEXT], self.left_topic)
        depth = self._depth(msgs[DEPTH], self.depth_topic, self.left_topic) \
            if self.depth_topic else None
        stamp = int(self.topics[self.left_topic].stamp_ns[row[LEFT]])
        return self._finish(images, depth, {
            "baseline": torch.tensor(self.baseline, dtype=torch.float32),
            "stamp_ns": torch.tensor(stamp, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64)})
