"""Bag -> bag: run a depth_kd checkpoint over a recorded camera and write a new rosbag2 (mcap).

    python -m depth_kd_core.bag_infer drive.mcap drive_depth --checkpoint best.pt

Reads any bag the data layer reads (rosbag2 mcap / sqlite3, ROS 1 ``.bag``) and writes a
rosbag2 folder in the mcap format, playable with ``ros2 bag play``, holding

* the input image topic (Image or CompressedImage) and its camera_info topic, converted to
  ROS 2 (Humble) message definitions (a ROS 1 Header loses ``seq``, CameraInfo D/K/R/P become
  d/k/r/p);
* per input frame, at the frame's log time and with its header (stamp, frame_id):
  ``<ns>/depth`` (32FC1 metres, NaN invalid), ``<ns>/depth/camera_info`` (the input's
  calibration at the image size, or the training camera when the bag has none and the
  checkpoint records its focal length), ``<ns>/uncertainty`` (32FC1 sigma in metres, for
  models that predict sigma) and ``<ns>/depth/colorized`` (bgr8).

The output is written to a temporary folder beside OUT and renamed at the end: an interrupted
or failed run leaves OUT as it was. Frame errors name the topic, the frame and its stamp.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from depth_kd_core.cli import run_cli, setup_cli_logging
from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.dataset_base import guess_info_topic
from depth_kd_core.data.bags.index import CAMERA_INFO, IMAGE_TYPES
from depth_kd_core.data.bags.reader import BagReader
from depth_kd_core.data.camera import CameraCalibration, check_calibrated
from depth_kd_core.depth_outputs import OutputOptions, frame_outputs
from depth_kd_core.errors import BagError, DepthKDError, OutputError
from depth_kd_core.fileio import atomic_dir, ensure_dir, remove_stale_temps
from depth_kd_core.inference import DepthEstimator
from depth_kd_core.visualize import COLORMAPS, colorize_depth

LOG = logging.getLogger(__name__)
TS = get_typestore(Stores.ROS2_HUMBLE)


@dataclass
class BagInferResult:
    """What :func:`infer_bag` wrote."""

    out: Path
    frames: int
    skipped: int
    topics: dict[str, int]  # output topic -> messages written
    seconds: float
    damage: str = ""  # the input was damaged: the output ends where the readable part ends


def to_ros2(msg: Any) -> Any:
    """Return a ROS 2 (Humble) copy of a rosbags message from any bag.

    ROS 1 fields are renamed or dropped: ``Header.seq`` goes, CameraInfo ``D, K, R, P``
    become ``d, k, r, p``.
    """
    cls = TS.types[msg.__msgtype__]
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(msg, f.name) if hasattr(msg, f.name) else getattr(msg, f.name.upper())
        if hasattr(value, "__msgtype__"):
            value = to_ros2(value)
        elif isinstance(value, list) and value and hasattr(value[0], "__msgtype__"):
            value = [to_ros2(v) for v in value]
        values[f.name] = value
    return cls(**values)


def _namespace(ns: str) -> str:
    ns = "/" + ns.strip().strip("/")
    if ns == "/" or any(not part or not (part[0].isalpha() or part[0] == "_")
                        or not all(c.isalnum() or c == "_" for c in part)
                        for part in ns[1:].split("/")):
        raise BagError(f"--out-namespace {ns!r} is not a valid ROS namespace (letters, digits, "
                       f"'_' and '/', e.g. /depth_kd)")
    return ns


def resolve_topics(reader: BagReader, image_topic: str | None, info_topic: str | None
                   ) -> tuple[str, str | None]:
    """Return the image topic (the bag's only one when not given) and its camera_info topic.

    For the camera_info topic, "" = none, None = by ROS convention.
    """
    topics = reader.topics()
    images = sorted(t for t, (typ, _) in topics.items() if typ in IMAGE_TYPES)
    if image_topic is None:
        if len(images) != 1:
            raise BagError(f"bag {reader.path} has {len(images)} image topics ({images}); "
                           f"choose one with --image-topic; topics: {reader.describe_topics()}")
        image_topic = images[0]
    if topics.get(image_topic, ("",))[0] not in IMAGE_TYPES:
        raise BagError(f"image topic '{image_topic}' is not an Image/CompressedImage topic of "
                       f"bag {reader.path}; topics: {reader.describe_topics()}")
    if info_topic is None:
        info_topic = guess_info_topic(image_topic, topics)
    elif info_topic and topics.get(info_topic, ("",))[0] != CAMERA_INFO:
        raise BagError(f"camera_info topic '{info_topic}' is not a CameraInfo topic of bag "
                       f"{reader.path}; topics: {reader.describe_topics()}")
    return image_topic, info_topic or None


class _Output:
    """The output bag: connections created on first use, message counts."""

    def __init__(self, writer: Writer) -> None:
        self.writer, self.conns, self.counts = writer, {}, {}

    def write(self, topic: str, log_ns: int, msg: Any) -> None:
        msgtype = msg.__msgtype__
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=TS)
            self.counts[topic] = 0
        self.writer.write(self.conns[topic], log_ns, TS.serialize_cdr(msg, msgtype))
        self.counts[topic] += 1


@dataclass
class _Job:
    estimator: DepthEstimator
    image_topic: str
    info_topic: str | None
    ns: str
    options: OutputOptions
    skip_bad_frames: bool
    logged: set[str] = dataclasses.field(default_factory=set)  # notes already logged


def _frame_outputs(job: _Job, msg: Any, calib: CameraCalibration | None) -> dict[str, Any]:
    """Return the output messages of one image: the node's builder, topics under the namespace."""
    rgb = mc.msg_to_rgb8(msg, job.image_topic)
    result = frame_outputs(job.estimator, TS.types, msg.header, rgb, calib, job.options,
                           source=job.info_topic or "camera_info")
    for level, text in result.notes:
        if text not in job.logged:
            job.logged.add(text)
            getattr(LOG, level)(text)
    return {f"{job.ns}/{name}": m for name, m in result.messages.items()}


def _calibration(msg: Any, topic: str) -> CameraCalibration | None:
    """Return a bag CameraInfo, or None (warned) if it is uncalibrated (K = 0), as in the node."""
    try:
        return check_calibrated(CameraCalibration.from_msg(msg, topic), f"camera_info '{topic}'")
    except DepthKDError as exc:
        LOG.warning("ignoring %s", exc)
        return None


def _first_calibration(reader: BagReader, info_topic: str | None) -> CameraCalibration | None:
    """Return the bag's first CameraInfo, for images logged before any camera_info."""
    if info_topic is None:
        return None
    for _, _, msg in _messages(reader, [info_topic], []):
        return _calibration(msg, info_topic)
    return None


def _messages(reader: BagReader, topics: list[str], damage: list[str]
              ) -> Iterator[tuple[str, int, Any]]:
    """``reader.iterate(topics)`` that ends at damage instead of raising, noting it."""
    it = reader.iterate(topics)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - rosbags/apsw/struct errors all mean damage
            damage.append(f"bag {reader.path} is damaged ({type(exc).__name__}: {exc}); the "
                          f"output holds the frames before the damage")
            LOG.warning(damage[-1])
            return


def _run(job: _Job, reader: BagReader, out: _Output, progress: bool
         ) -> tuple[int, int, str]:
    """Copy the input topics and write the outputs; returns (frames, skipped, damage note)."""
    calib = _first_calibration(reader, job.info_topic)
    topics = [job.image_topic] + ([job.info_topic] if job.info_topic else [])
    total = reader.topics()[job.image_topic][1]
    frames = skipped = 0
    damage = [reader.damage] if reader.damage else []
    with tqdm(total=total, desc=f"depth {job.image_topic}", unit="frame",
              disable=not progress) as bar:
        for topic, log_ns, msg in _messages(reader, topics, damage):
            out.write(topic, log_ns, to_ros2(msg))
            if topic == job.info_topic:
                calib = _calibration(msg, topic)
                continue
            try:
                outputs = _frame_outputs(job, msg, calib)
            except DepthKDError as exc:
                where = (f"topic '{topic}' frame {frames + skipped} (stamp "
                         f"{mc.stamp_ns(msg)} ns) of bag {reader.path}")
                if not job.skip_bad_frames:
                    raise BagError(f"{where}: {exc}") from exc
                tqdm.write(f"skipped {where}: {exc}", file=sys.stderr)
                skipped += 1
            else:
                for name, m in outputs.items():
                    out.write(name, log_ns, m)
                frames += 1
            bar.update()
    return frames, skipped, "; ".join(damage)


def infer_bag(src: str | Path, dst: str | Path, checkpoint: str | Path, *,
              image_topic: str | None = None, info_topic: str | None = None,
              out_namespace: str = "/depth_kd", device: str | None = None,
              fp16: bool = False, focal_scaling: bool = True, colormap: str = "turbo",
              colorize_range: tuple[float, float] = (1.0, 80.0), overwrite: bool = False,
              skip_bad_frames: bool = False, progress: bool = True) -> BagInferResult:
    """Write ``dst`` (a rosbag2 mcap folder): ``src``'s camera plus depth topics.

    Args:
        src: input bag (mcap/sqlite3 rosbag2 folder or file, ROS 1 ``.bag``).
        dst: output rosbag2 folder; must not exist unless ``overwrite``.
        checkpoint: depth_kd checkpoint of a monocular depth network.
        image_topic: Image/CompressedImage topic; None = the bag's only image topic.
        info_topic: its CameraInfo topic; None = by ROS convention, "" = none.
        out_namespace: prefix of the output topics.
        device, fp16, focal_scaling: as in :meth:`DepthEstimator.from_checkpoint`.
        colormap, colorize_range: ``<ns>/depth/colorized`` rendering (metres).
        skip_bad_frames: log and skip undecodable frames instead of failing.
        progress: show a progress bar.

    Raises:
        BagError: missing/ambiguous topics, an existing ``dst``, a bad frame (naming topic,
            frame and stamp); ``dst`` is then untouched.
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    check_output(src, dst, overwrite)
    reader = BagReader(src)
    try:
        image_topic, info_topic = resolve_topics(reader, image_topic, info_topic)
        job = _Job(DepthEstimator.from_checkpoint(checkpoint, device or None, fp16,
                                                  focal_scaling),
                   image_topic, info_topic, _namespace(out_namespace),
                   OutputOptions(focal_scaling=focal_scaling, colormap=colormap,
                                 colorize_min_depth=colorize_range[0],
                                 colorize_max_depth=colorize_range[1]),
                   skip_bad_frames)
        colorize_depth(np.ones((1, 1), np.float32), *colorize_range, colormap)  # validate early
        ensure_dir(dst.parent, "output folder")
        remove_stale_temps(dst.parent, dst.name)  # left by a killed earlier run of this OUT
        with atomic_dir(dst) as tmp:
            with Writer(tmp, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
                out = _Output(writer)
                frames, skipped, damage = _run(job, reader, out, progress)
    finally:
        reader.close()
    return BagInferResult(dst, frames, skipped, out.counts, time.perf_counter() - t0, damage)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _is_rosbag2_folder(path: Path) -> bool:
    """Return whether ``path`` is a folder holding only what a rosbag2 writer makes.

    That is: metadata.yaml and its storage files.
    """
    if not path.is_dir() or not (path / "metadata.yaml").is_file():
        return False
    return all(p.is_file() and (p.name == "metadata.yaml" or p.suffix in (".mcap", ".db3"))
               for p in path.iterdir())


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse any OUT whose writing could lose data.

    That is: the input itself, a folder holding the input, a path inside the input, an
    existing OUT without ``overwrite``, and (even with it) an existing OUT that is not a
    rosbag2 bag folder.

    Raises:
        OutputError: naming OUT and what to do.
    """
    s, d = src.resolve(), dst.resolve()
    if _is_within(s, d):
        raise OutputError(f"output {dst} is the input bag or holds it ({src}); choose an "
                          f"output path outside the input")
    if _is_within(d, s):
        raise OutputError(f"output {dst} is inside the input bag {src}; choose an output path "
                          f"outside it")
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise OutputError(f"output {dst} exists; choose another path or pass --overwrite")
        if dst.is_symlink() or not _is_rosbag2_folder(dst):
            raise OutputError(f"output {dst} exists and is not a rosbag2 bag folder (only "
                              f"metadata.yaml and .mcap/.db3 files); --overwrite replaces only "
                              f"bags, choose another path")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m depth_kd_core.bag_infer",
        description=(
            "Run a depth_kd checkpoint over a recorded camera and write a new rosbag2 (mcap), "
            "playable with 'ros2 bag play'.\n\nIN may be a rosbag2 (mcap or sqlite3) or a "
            "ROS 1 bag. OUT gets the input image and camera_info topics (as ROS 2 messages) "
            "and, for every input frame with its header stamp:\n"
            "  <ns>/depth              32FC1 metres, NaN = invalid\n"
            "  <ns>/depth/camera_info  the camera's calibration at the image size\n"
            "  <ns>/uncertainty        32FC1 sigma in metres (models that predict sigma)\n"
            "  <ns>/depth/colorized    bgr8 preview\n"
            "OUT is written to a temporary folder and renamed at the end: a failed run "
            "leaves no partial bag. Errors name the topic, frame and stamp."),
        epilog="example: python -m depth_kd_core.bag_infer drive.mcap drive_depth "
               "--checkpoint runs/tie_kd/best.pt --image-topic /cam/image_raw\n"
               "then:    ros2 bag play drive_depth",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="IN", help="input bag: rosbag2 folder or .mcap/.db3 "
                        "file, or a ROS 1 .bag")
    parser.add_argument("output", metavar="OUT", help="output rosbag2 folder (mcap) to create")
    parser.add_argument("--checkpoint", required=True, help="depth_kd checkpoint (.pt) of a "
                        "monocular depth network")
    parser.add_argument("--image-topic", default=None, help="Image or CompressedImage topic "
                        "(default: the bag's only image topic)")
    parser.add_argument("--info-topic", default=None, help="CameraInfo topic (default: "
                        "<image namespace>/camera_info or the bag's only one; '' for none)")
    parser.add_argument("--out-namespace", default="/depth_kd", help="prefix of the output "
                        "topics (default: /depth_kd)")
    parser.add_argument("--device", default="", help="torch device: cpu, cuda, cuda:1 "
                        "(default: CUDA when available, else CPU)")
    parser.add_argument("--fp16", action="store_true", help="half-precision inference (CUDA)")
    parser.add_argument("--no-focal-scaling", action="store_true", help="do not rescale "
                        "depth by f_camera / f_training")
    parser.add_argument("--colormap", default="turbo", choices=sorted(COLORMAPS),
                        help="colour map of <ns>/depth/colorized (default: turbo)")
    parser.add_argument("--colorize-range", nargs=2, type=float, default=(1.0, 80.0),
                        metavar=("MIN", "MAX"), help="depth range of the colours, metres "
                        "(default: 1 80)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT "
                        "bag folder (only once the new bag is complete; never a folder that is "
                        "not a bag or that holds IN)")
    parser.add_argument("--skip-bad-frames", action="store_true", help="skip undecodable "
                        "frames (reported) instead of stopping")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an "
                        "error (also: DEPTH_KD_DEBUG=1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the console entry point (``depth_kd_bag_infer``); return the exit status.

    The status is 2 for a bag, checkpoint or output problem, named in one line on stderr.
    """
    args = _parser().parse_args(argv)
    return run_cli(lambda: _main(args), debug=args.debug, prog="depth_kd_core.bag_infer")


def _main(args: argparse.Namespace) -> int:
    setup_cli_logging()
    result = infer_bag(args.input, args.output, args.checkpoint,
                       image_topic=args.image_topic, info_topic=args.info_topic,
                       out_namespace=args.out_namespace, device=args.device,
                       fp16=args.fp16, focal_scaling=not args.no_focal_scaling,
                       colormap=args.colormap, colorize_range=tuple(args.colorize_range),
                       overwrite=args.overwrite, skip_bad_frames=args.skip_bad_frames,
                       progress=not args.no_progress)
    print(f"wrote {result.out}: {result.frames} frames ({result.skipped} skipped) in "
          f"{result.seconds:.1f} s")
    for topic, n in sorted(result.topics.items()):
        print(f"  {topic}: {n} messages")
    if result.damage:
        print(f"warning: {result.damage}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
