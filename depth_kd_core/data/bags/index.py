"""The message index of a bag: one scan, cached on disk, then stereo sync and video triples.

Scanning reads every message of the wanted topics once (with a progress bar) and keeps, per
topic, the log time, header stamp and ordinal of each message — the address
:meth:`BagReader.fetch` needs — plus the first CameraInfo of calibration topics. The result
is cached as an ``.npz`` file keyed by the bag's files (size, mtime) and the topic list, so
later epochs and runs do not rescan. Stereo pairs and sequence triples are computed from the
stamps in milliseconds and are therefore not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depth_kd_core.data.bags.codec import stamp_ns
from depth_kd_core.data.bags.mcap_offsets import read_message_offsets, single_mcap_file
from depth_kd_core.data.bags.reader import BagReader
from depth_kd_core.data.camera import CameraCalibration
from depth_kd_core.errors import BagError
from depth_kd_core.fileio import atomic_path, remove_stale_temps

LOG = logging.getLogger(__name__)
INDEX_VERSION = 2
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


@dataclass
class TopicIndex:
    """Where each message of one topic is: log time, header stamp, ordinal (all int64)."""

    topic: str
    msgtype: str
    log_ns: np.ndarray
    stamp_ns: np.ndarray
    ordinal: np.ndarray
    calibration: dict | None = None  # first CameraInfo, as CameraCalibration.to_dict()
    offset: np.ndarray | None = None  # byte offset of each message's data in BagIndex.mcap_file
    length: np.ndarray | None = None  # its length; None when the topic has no direct offsets

    def __len__(self) -> int:
        return int(self.log_ns.size)

    def address(self, i: int) -> tuple[str, int, int]:
        """(topic, log ns, ordinal) of message ``i`` for :meth:`BagReader.fetch`."""
        return self.topic, int(self.log_ns[i]), int(self.ordinal[i])


@dataclass
class BagIndex:
    """The scanned topics of a bag; ``damage`` notes a truncated/corrupt bag ("" if intact)."""

    path: str
    topics: dict[str, TopicIndex]
    damage: str = ""
    available: dict[str, str] = field(default_factory=dict)  # every topic -> message type
    mcap_file: str = ""  # the file TopicIndex.offset points into ("" = none)


def _bag_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def index_key(path: Path, topics: list[str]) -> str:
    """Hash of the bag's files (name, size, mtime), the topics and the index version."""
    h = hashlib.sha1(f"{INDEX_VERSION}|{path.resolve()}|{sorted(topics)}".encode())
    for f in _bag_files(path):
        st = f.stat()
        h.update(f"|{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def default_cache_dir(path: Path) -> Path:
    """Beside the bag when that folder is writable, else ``~/.cache/depth_kd/bag_index``."""
    parent = path.resolve().parent
    if os.access(parent, os.W_OK):
        return parent
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "depth_kd" / "bag_index"


def check_topics(reader: BagReader, wanted: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Fail naming the existing topics if a wanted topic is absent or of the wrong type."""
    present = reader.topics()
    for topic, types in wanted.items():
        if topic not in present:
            kind = "camera_info topic" if types == (CAMERA_INFO,) else "topic"
            raise BagError(f"{kind} '{topic}' is missing from bag {reader.path}; topics "
                           f"in the bag: {reader.describe_topics()}")
        if present[topic][0] not in types:
            raise BagError(f"topic '{topic}' in bag {reader.path} has type {present[topic][0]}; "
                           f"expected {' or '.join(types)}")
    return {t: typ for t, (typ, _) in present.items()}


def scan(reader: BagReader, wanted: dict[str, tuple[str, ...]], progress: bool = True) -> BagIndex:
    """Read every message of the wanted topics once and index it."""
    available = check_topics(reader, wanted)
    counts = reader.topics()
    rows: dict[str, list[tuple[int, int, int]]] = {t: [] for t in wanted}
    calib: dict[str, dict] = {}
    last: dict[str, tuple[int, int]] = {}
    damage = reader.damage
    total = sum(counts[t][1] for t in wanted)
    bar = tqdm(total=total, desc=f"indexing {reader.path.name}", unit="msg", disable=not progress,
               leave=False)
    try:
        for topic, log_ns, msg in reader.iterate(wanted):
            k = last[topic][1] + 1 if last.get(topic, (None,))[0] == log_ns else 0
            last[topic] = (log_ns, k)
            rows[topic].append((log_ns, stamp_ns(msg), k))
            if wanted[topic] == (CAMERA_INFO,) and topic not in calib:
                calib[topic] = CameraCalibration.from_msg(msg, topic).to_dict()
            bar.update()
    except BagError:
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags/apsw/struct errors all mean damage
        if not any(rows.values()):
            raise BagError(f"bag {reader.path} is corrupt: no message could be read "
                           f"({exc or type(exc).__name__})") from exc
        damage = (f"bag {reader.path} is damaged after {sum(map(len, rows.values()))} messages "
                  f"({exc or type(exc).__name__}); the messages before the damage are used")
        LOG.warning(damage)
    finally:
        bar.close()
    topics = {}
    for topic, r in rows.items():
        arr = np.asarray(r, dtype=np.int64).reshape(-1, 3)
        topics[topic] = TopicIndex(topic, available[topic], arr[:, 0].copy(), arr[:, 1].copy(),
                                   arr[:, 2].copy(), calib.get(topic))
    index = BagIndex(str(reader.path), topics, damage, available)
    if not damage:
        _add_offsets(index, reader.path)
    return index


def _add_offsets(index: BagIndex, path: Path) -> None:
    """Attach mcap byte offsets to topics whose messages all have one (see mcap_offsets)."""
    file = single_mcap_file(path)
    if file is None:
        return
    try:
        found = read_message_offsets(file, set(index.topics))
    except (OSError, struct.error, ValueError) as exc:
        LOG.debug("no mcap offsets for %s: %s", file, exc)
        return
    for topic, t in index.topics.items():
        arr = found.get(topic)
        # rosbags yields equal log times in file order, as the sorted offsets are
        if arr is not None and len(arr) == len(t) and np.array_equal(arr[:, 0], t.log_ns):
            t.offset, t.length = arr[:, 1].copy(), arr[:, 2].copy()
            index.mcap_file = str(file)


def save_index(index: BagIndex, file: Path) -> None:
    """Write the index atomically (npz: arrays per topic + JSON metadata)."""
    arrays, meta = {}, {"version": INDEX_VERSION, "path": index.path, "damage": index.damage,
                        "available": index.available, "topics": []}
    meta["mcap_file"] = index.mcap_file
    for i, t in enumerate(index.topics.values()):
        arrays.update({f"log{i}": t.log_ns, f"stamp{i}": t.stamp_ns, f"ord{i}": t.ordinal})
        if t.offset is not None:
            arrays.update({f"off{i}": t.offset, f"len{i}": t.length})
        meta["topics"].append({"topic": t.topic, "msgtype": t.msgtype,
                               "calibration": t.calibration})
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_index(file: Path) -> BagIndex:
    """Read an index written by :func:`save_index`.

    Raises:
        ValueError: the file is not a complete index of this version (any other exception
            from a damaged file, e.g. ``zipfile.BadZipFile`` or ``EOFError``, means the same).
    """
    with np.load(file, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("version") != INDEX_VERSION:
            raise ValueError(f"index version {meta.get('version')}, expected {INDEX_VERSION}")
        topics = {}
        for i, t in enumerate(meta["topics"]):
            has = f"off{i}" in data
            topics[t["topic"]] = TopicIndex(t["topic"], t["msgtype"], data[f"log{i}"],
                                            data[f"stamp{i}"], data[f"ord{i}"], t["calibration"],
                                            data[f"off{i}"] if has else None,
                                            data[f"len{i}"] if has else None)
            if not (len(topics[t["topic"]].stamp_ns) == len(topics[t["topic"]].ordinal)
                    == len(topics[t["topic"]])):
                raise ValueError(f"topic {t['topic']}: arrays of different lengths")
    return BagIndex(meta["path"], topics, meta["damage"], meta["available"],
                    meta.get("mcap_file", ""))


def load_or_scan(reader: BagReader, wanted: dict[str, tuple[str, ...]],
                 cache_dir: str | Path | None = None, progress: bool = True) -> BagIndex:
    """Return the cached index of these topics, scanning (and caching) it on first use."""
    key = index_key(reader.path, list(wanted))
    folder = Path(cache_dir) if cache_dir else default_cache_dir(reader.path)
    file = folder / f".{reader.path.name}.{key}.depth_kd_index.npz"
    remove_stale_temps(folder, f".{reader.path.name}.*.depth_kd_index.npz")  # killed savers
    if file.is_file():
        try:
            return load_index(file)
        except Exception as exc:  # noqa: BLE001 - truncated, empty or foreign: all rebuilt
            LOG.warning("bag index cache %s is unreadable (%s: %s); removing it and rescanning "
                        "the bag", file, type(exc).__name__, exc)
            try:
                file.unlink()  # our own cache; a bad one must not outlive this run
            except OSError as rm_exc:
                LOG.warning("could not remove %s: %s", file, rm_exc)
    index = scan(reader, wanted, progress)
    try:
        save_index(index, file)
    except OSError as exc:  # a read-only place only costs a rescan next time
        LOG.warning("could not cache the bag index at %s: %s", file, exc)
    return index


# ---------------------------------------------------------------------------- sync


@dataclass
class SyncReport:
    """Outcome of matching two streams by header stamp.

    ``unmatched``: messages with no partner within the tolerance; ``dropped``: messages that
    had one but lost it to a closer message (matching is one-to-one).
    """

    matched: int
    unmatched_left: int
    unmatched_right: int
    dropped_left: int
    dropped_right: int
    tolerance_ns: int

    def __str__(self) -> str:
        return (f"{self.matched} matched, unmatched {self.unmatched_left} left / "
                f"{self.unmatched_right} right, dropped {self.dropped_left} left / "
                f"{self.dropped_right} right (tolerance {self.tolerance_ns / 1e6:g} ms)")


def _nearest(src: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest ``ref`` stamp (sorted) for each ``src`` stamp."""
    if ref.size == 0:
        return np.zeros(src.size, np.int64), np.full(src.size, np.iinfo(np.int64).max)
    j = np.clip(np.searchsorted(ref, src), 1, max(ref.size - 1, 1))
    lo = np.clip(j - 1, 0, ref.size - 1)
    hi = np.clip(j, 0, ref.size - 1)
    pick = np.where(np.abs(ref[lo] - src) <= np.abs(ref[hi] - src), lo, hi)
    return pick, np.abs(ref[pick] - src)


def sync_stamps(left: np.ndarray, right: np.ndarray,
                tolerance_ns: int) -> tuple[np.ndarray, SyncReport]:
    """One-to-one pairs (i, j) of stamps with |left[i] - right[j]| <= tolerance, closest first.

    Returns:
        (N x 2 int64 array of message indices, sorted by left stamp; the report).
    """
    lo_, ro_ = np.argsort(left, kind="stable"), np.argsort(right, kind="stable")
    ls, rs = left[lo_], right[ro_]
    j, dist = _nearest(ls, rs)
    cand = np.nonzero(dist <= tolerance_ns)[0]
    used_r, pairs = set(), []
    for i in cand[np.argsort(dist[cand], kind="stable")]:
        if int(j[i]) not in used_r:
            used_r.add(int(j[i]))
            pairs.append((int(i), int(j[i])))
    pairs.sort()
    matched_l = {i for i, _ in pairs}
    _, rdist = _nearest(rs, ls)
    had_l, had_r = dist <= tolerance_ns, rdist <= tolerance_ns
    report = SyncReport(
        matched=len(pairs),
        unmatched_left=int((~had_l).sum()), unmatched_right=int((~had_r).sum()),
        dropped_left=int(had_l.sum()) - len(matched_l),
        dropped_right=int(had_r.sum()) - len(used_r), tolerance_ns=int(tolerance_ns))
    out = np.array([(lo_[i], ro_[j]) for i, j in pairs], dtype=np.int64).reshape(-1, 2)
    return out, report


def closest_offset_ns(left: np.ndarray, right: np.ndarray) -> int | None:
    """Smallest |left - right| stamp difference (for 'nothing synchronised' errors)."""
    if left.size == 0 or right.size == 0:
        return None
    _, dist = _nearest(np.sort(left), np.sort(right))
    return int(dist.min())


def sequence_neighbours(stamps: np.ndarray, max_gap_ns: int | None = None) -> np.ndarray:
    """(prev, next) message indices for each message in stamp order, -1 where none qualifies.

    Neighbours further than ``max_gap_ns`` apart (a recording pause or a scene cut) do not
    count; by default the gap limit is 2.5 x the median frame period.
    """
    order = np.argsort(stamps, kind="stable")
    s = stamps[order]
    out = np.full((stamps.size, 2), -1, dtype=np.int64)
    if stamps.size < 3:
        return out
    gaps = np.diff(s)
    if max_gap_ns is None:
        max_gap_ns = int(2.5 * np.median(gaps))
    ok = (gaps > 0) & (gaps <= max_gap_ns)
    pos = np.arange(1, s.size - 1)
    good = ok[pos - 1] & ok[pos]
    out[order[pos[good]], 0] = order[pos[good] - 1]
    out[order[pos[good]], 1] = order[pos[good] + 1]
    return out
