"""Stereo pairs per second out of an mcap bag: decode + sync + rectify + resize to 640x192.

    python -m benchmarks.bag_io [--height 288 --width 960 --unique 6 --repeat 25]

Writes synthetic stereo bags (rgb8 Image already rectified, rgb8 Image raw and distorted,
jpeg CompressedImage raw) into a temporary folder and prints, per bag, the raw ``rosbags``
read rate (read + deserialise both image topics, nothing else), the same plus decoding to
RGB arrays, and the ``StereoBagDataset`` rate (fetch, decode, sync'd pairs, rectify, resize,
tensors) in the same run, one process, index already cached; ``ratio`` = dataset / raw.
Aim (issue 3): ratio >= 0.5. ``--workers N`` adds a DataLoader row with N worker processes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rosbags.highlevel import AnyReader
from torch.utils.data import DataLoader

from depth_kd_core.data.bags.codec import msg_to_rgb8
from depth_kd_core.data.bags.datasets import StereoBagDataset
from depth_kd_core.data.bags.writer import BagTopics, RawRig
from depth_kd_core.data.synthetic.recording import write_synthetic_bag
from depth_kd_core.data.synthetic.world import SyntheticWorld

OUT_H, OUT_W = 192, 640
VARIANTS = {  # name: (writer options, topics)
    "rgb8, rectified": (dict(), BagTopics()),
    "rgb8, raw + rectify": (dict(raw=RawRig()), BagTopics(
        left="/l/image_raw", right="/r/image_raw", left_info="/l/camera_info",
        right_info="/r/camera_info")),
    "jpeg, raw + rectify": (dict(raw=RawRig(), compressed="jpeg"), BagTopics(
        left="/l/image_raw/compressed", right="/r/image_raw/compressed",
        left_info="/l/camera_info", right_info="/r/camera_info")),
}


def raw_rate(path: Path, topics: BagTopics) -> float:
    """Stereo pairs/s of plain rosbags reading and deserialising both image topics."""
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic in (topics.left, topics.right)]
        start, n = time.perf_counter(), 0
        for conn, _, raw in reader.messages(connections=conns):
            reader.deserialize(raw, conn.msgtype)
            n += 1
        return n / 2 / (time.perf_counter() - start)


def decode_rate(path: Path, topics: BagTopics) -> float:
    """Stereo pairs/s of rosbags reading plus decoding each image to an RGB array."""
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic in (topics.left, topics.right)]
        start, n = time.perf_counter(), 0
        for conn, _, raw in reader.messages(connections=conns):
            msg_to_rgb8(reader.deserialize(raw, conn.msgtype))
            n += 1
        return n / 2 / (time.perf_counter() - start)


def loader_rate(ds: StereoBagDataset, workers: int) -> float:
    """Stereo pairs/s through a DataLoader with ``workers`` processes (batches of 8)."""
    loader = DataLoader(ds, batch_size=8, num_workers=workers, persistent_workers=True)
    next(iter(loader))  # start the workers
    start = time.perf_counter()
    n = sum(len(batch["left"]) for batch in loader)
    return n / (time.perf_counter() - start)


def dataset_rate(ds: StereoBagDataset) -> float:
    """Stereo pairs/s of StereoBagDataset items (fetch, decode, rectify, resize, tensors)."""
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return len(ds) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=288, help="recorded image height")
    parser.add_argument("--width", type=int, default=960, help="recorded image width")
    parser.add_argument("--unique", type=int, default=6, help="distinct rendered frames")
    parser.add_argument("--repeat", type=int, default=25, help="times the frames are recorded")
    parser.add_argument("--workers", type=int, default=0,
                        help="also measure a DataLoader with this many workers (0 = skip)")
    args = parser.parse_args(argv)
    world = SyntheticWorld(seed=0, height=args.height, width=args.width)
    print(f"bag images {args.width}x{args.height} -> items {OUT_W}x{OUT_H}, "
          f"{args.unique * args.repeat} stereo pairs per bag, mcap, one process")
    loader_col = f"{f'{args.workers} workers':>10}" if args.workers else ""
    print(f"{'bag':>22} {'index s':>8} {'raw read':>9} {'+decode':>8} {'dataset':>8} "
          f"{'ratio':>6}{loader_col}   (stereo pairs/s)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (options, topics) in VARIANTS.items():
            path = write_synthetic_bag(Path(tmp) / name.replace(" ", "_").replace(",", ""),
                                       world, args.unique, topics=topics, with_depth=False,
                                       repeat=args.repeat, **options)
            start = time.perf_counter()
            ds = StereoBagDataset(path, topics.left, topics.right, topics.left_info,
                                  topics.right_info, height=OUT_H, width=OUT_W,
                                  cache_dir=tmp, progress=False)
            index_s = time.perf_counter() - start
            ds[0]  # warm-up: reader open, rectification maps
            raw, decoded = raw_rate(path, topics), decode_rate(path, topics)
            ours = dataset_rate(ds)
            extra = f"{loader_rate(ds, args.workers):>10.1f}" if args.workers else ""
            print(f"{name:>22} {index_s:>8.2f} {raw:>9.1f} {decoded:>8.1f} {ours:>8.1f} "
                  f"{ours / raw:>6.2f}{extra}")


if __name__ == "__main__":
    main()
