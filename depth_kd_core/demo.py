"""The package's main job on an embedded default: ``python -m depth_kd_core.demo``.

Renders a few frames of the synthetic stereo world, writes colourised previews, and scores a
trivial constant-depth baseline with the shared metrics, so that a fresh install proves the
data and evaluation path end to end. (Later issues extend this into the full distillation
demo: synthetic bag -> teacher -> distilled student -> evaluation.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from depth_kd_core.data.synthetic import SyntheticWorld
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.metrics import average_metrics, depth_metrics


def colorize_depth(depth: np.ndarray, max_depth: float = 80.0) -> np.ndarray:
    """H x W metres -> H x W x 3 uint8 BGR (turbo, near = red), black where depth <= 0."""
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-3), 0.0)
    norm = np.clip(inv / (1.0 / 2.0), 0.0, 1.0)  # 2 m and closer saturate
    out = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    out[~(depth > 0)] = 0
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--frames", type=int, default=4, help="synthetic frames to render")
    parser.add_argument("--seed", type=int, default=0, help="synthetic world seed")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = SyntheticWorld(seed=args.seed, height=96, width=320)
    scores = []
    for i in range(args.frames):
        f = world.sample(i)
        gt = f["lidar_depth"]
        baseline = np.full_like(gt, float(np.median(f["depth"][f["depth"] > 0])))
        scores.append(depth_metrics(baseline, gt))
        cv2.imwrite(str(out / f"frame_{i:03d}.png"), np.concatenate(
            [f["left"][..., ::-1], colorize_depth(f["depth"])], axis=0))
    summary = average_metrics(scores)
    table = "\n".join(f"{k:>14} {v:10.4f}" for k, v in summary.items())
    atomic_write_text(out / "metrics.txt", "constant-depth baseline vs LiDAR GT\n" + table + "\n")
    print(f"wrote {args.frames} previews and metrics.txt to {out}\n{table}")


if __name__ == "__main__":
    main()
