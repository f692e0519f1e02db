"""Frames per second of the synthetic stereo world (left + right render, GT, LiDAR).

    python -m benchmarks.synthetic_world [--frames 40] [--workers 1 2]

Prints one row per (resolution, worker processes). Aim (issue 2): >= 20 frames/s at 96x320
on 2 cores, i.e. with two worker processes as a DataLoader would use them.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

from depth_kd_core.data.synthetic.world import SyntheticWorld

_WORLD: SyntheticWorld | None = None


def _init(height: int, width: int) -> None:
    global _WORLD
    _WORLD = SyntheticWorld(seed=0, height=height, width=width)


def _render(i: int) -> int:
    return int(_WORLD.sample(i)["left"].shape[0])


def measure(height: int, width: int, frames: int, workers: int) -> float:
    """Frames per second rendering ``frames`` distinct scenes with ``workers`` processes."""
    if workers == 1:
        _init(height, width)
        _render(10_000)  # warm-up (imports, caches)
        start = time.perf_counter()
        for i in range(frames):
            _render(i)
        return frames / (time.perf_counter() - start)
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(height, width)) as pool:
        list(pool.map(_render, range(10_000, 10_000 + workers)))  # warm-up every worker
        start = time.perf_counter()
        list(pool.map(_render, range(frames), chunksize=2))
        return frames / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker-process counts to measure")
    args = parser.parse_args(argv)
    print(f"cpu cores visible: {os.cpu_count()}")
    print(f"{'resolution':>12} {'workers':>8} {'frames/s':>9} {'ms/frame':>9}")
    for height, width in ((96, 320), (192, 640)):
        for workers in args.workers:
            n = args.frames if height == 96 else max(args.frames // 4, 4)
            fps = measure(height, width, n, workers)
            print(f"{f'{height}x{width}':>12} {workers:>8} {fps:>9.1f} {1000 / fps:>9.1f}")


if __name__ == "__main__":
    main()
