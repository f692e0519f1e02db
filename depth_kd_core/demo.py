"""The package's main job on an embedded default: ``python -m depth_kd_core.demo`` (no ROS).

1. Render a synthetic stereo drive into a rosbag2 (mcap) bag with CameraInfo, KITTI-like
   LiDAR and rendered depth, and a held-out test drive (another seed) with dense depth.
2. Teacher: OpenCV SGBM, dense (left border matched, left-right check, holes filled by the
   WLS filter, per-pixel confidence) -> a teacher checkpoint. No training.
3. Distil a monocular student from it with TIE-KD, reading the training bag; the KL term is
   weighted by the teacher's confidence. The student is sized for a CPU: MobileNetV2 with a
   light decoder and 64 depth bins at 64x192 input (inference resizes, so it runs on the
   96x320 test images).
4. Evaluate student and teacher on the test bag beside two predictors that ignore the
   image (the no-image prior: per-pixel mean log-depth of the training drive; a constant),
   with teacher-student agreement and uncertainty quality, and write colourised grids.
5. Run the student over the test bag, writing a new bag with depth/uncertainty topics.

``--oracle`` also trains the same student for the same steps on the training drive's
rendered depth (ground truth the teacher never sees), to show how much of the gap to
perfect supervision distillation closes.

Everything lands in ``--out`` (default outputs/demo): bags, the run folder (checkpoints,
config.yaml, git_sha.txt, TensorBoard logs in tb/), eval/ (CSV, JSON, PNG grids) and
metrics.md. About 9 minutes on 2 CPU cores; ``--steps`` trades time for accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from depth_kd_core.baselines import DepthPrior, fit_depth_prior
from depth_kd_core.cli import run_cli
from depth_kd_core.data.bags.writer import BagTopics
from depth_kd_core.data.config import DataCfg, RosbagSourceCfg
from depth_kd_core.data.datasets import build_datasets
from depth_kd_core.data.synthetic.recording import write_synthetic_bag
from depth_kd_core.data.synthetic.world import SyntheticWorld
from depth_kd_core.evaluate import EvalCfg, EvaluateConfig, baseline_table, run
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.train import Trainer
from depth_kd_core.training.config import load_train_config

HEIGHT, WIDTH = 96, 320  # the recorded drives: KITTI aspect at CPU scale
TRAIN_HEIGHT, TRAIN_WIDTH = 64, 192  # the student's input (2.5x fewer pixels per step)
TOPICS = BagTopics()
# 64 bins instead of TIE-KD's 257: the full-resolution 257-way softmax is most of a CPU step
# (measured 2.8 -> 0.9 s per batch of 8, one thread); 1.25 m bins, depth is their expectation
STUDENT = ["model.name=tiekd_student", "model.encoder=mobilenetv2_100",
           "model.decoder_channels=[16,32,64,96,128]", "model.n_bins=64"]
# AdamW as TIE-KD; a short warm-up and a 1e-3 peak suit a few hundred steps
OPTIM = ["optim.name=adamw", "optim.lr=1e-3", "optim.betas=[0.9,0.99]",
         "optim.weight_decay=0.01", "optim.schedule=onecycle", "optim.onecycle_pct=0.1",
         "optim.onecycle_div=10", "optim.onecycle_final_div=20", "data.batch_size=8"]
SGBM = ["model.num_disparities=32", "model.block_size=5", "model.fill=wls"]  # at 64x192: >= 1.9 m
FRAMES_PER_SCENE = 6  # many short scenes teach more than a few long ones
STUDENT_ROW, TEACHER = "TIE-KD student (monocular)", "SGBM teacher (stereo, dense)"
ORACLE_ROW = "oracle: same student on ground truth"


def _bag_data(path: Path, depth_topic: str, height: int = TRAIN_HEIGHT,
              width: int = TRAIN_WIDTH) -> list[str]:
    return ["data.source=rosbag", f"data.rosbag.path={path}", f"data.height={height}",
            f"data.width={width}", f"data.rosbag.depth_topic={depth_topic}"]


def _train(overrides: list[str]) -> Path:
    cfg = load_train_config(None, overrides)
    Trainer(cfg, overwrite=True).fit()  # the demo's own run folders: a rerun replaces them
    return Path(cfg.trainer.out_dir) / "checkpoints" / "last.pt"


def _test_data(test_bag: Path) -> DataCfg:
    data = DataCfg(source="rosbag", height=HEIGHT, width=WIDTH,
                   rosbag=RosbagSourceCfg(path=str(test_bag), val_path=str(test_bag),
                                          depth_topic=TOPICS.depth))
    data.augment.enabled = False
    return data


def _evaluate(spec: str, teacher: str, test_bag: Path, out: Path, prior: DepthPrior) -> dict:
    cfg = EvaluateConfig(eval=EvalCfg(checkpoint=spec, teacher=teacher, out_dir=str(out),
                                      grid_every=4, batch_size=4), data=_test_data(test_bag))
    return run(cfg, prior=prior)["summary"]


def _prior(train_bag: Path) -> DepthPrior:
    """Fit the no-image prior on the training drive's rendered depth (what a fixed map gets)."""
    data = DataCfg(source="rosbag", height=HEIGHT, width=WIDTH,
                   rosbag=RosbagSourceCfg(path=str(train_bag), right_topic="",
                                          depth_topic=TOPICS.depth))
    data.augment.enabled = False
    train, _ = build_datasets(data, {"depth_gt"})
    return fit_depth_prior(train, max_images=len(train))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m depth_kd_core.demo",
                                     description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--steps", type=int, default=600, help="student training steps")
    parser.add_argument("--train-frames", type=int, default=480,
                        help=f"frames in the training drive ({FRAMES_PER_SCENE} per scene)")
    parser.add_argument("--test-frames", type=int, default=40, help="held-out test frames")
    parser.add_argument("--oracle", action="store_true",
                        help="also train the same student on ground truth (about 1.6x the "
                             "time)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: DEPTH_KD_DEBUG=1)")
    args = parser.parse_args(argv)
    return run_cli(lambda: _main(args), debug=args.debug, prog="depth_kd_core.demo")


def _main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    start = time.time()
    summary = _run(args, out)
    summary["minutes"] = (time.time() - start) / 60
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print((out / "metrics.md").read_text())
    print(f"done in {summary['minutes']:.1f} min; everything is in {out}")
    return 0


def _run(args, out: Path) -> dict:
    n = 6 if args.oracle else 5
    print(f"[1/{n}] rendering the synthetic stereo drives into rosbag2 (mcap) bags", flush=True)
    train_bag, test_bag = out / "data" / "train_drive", out / "data" / "test_drive"
    write_synthetic_bag(train_bag, SyntheticWorld(0, HEIGHT, WIDTH), args.train_frames,
                        with_depth=True, with_lidar=True, frames_per_scene=FRAMES_PER_SCENE,
                        progress=True)
    write_synthetic_bag(test_bag, SyntheticWorld(1000, HEIGHT, WIDTH), args.test_frames,
                        with_depth=True, frames_per_scene=4, progress=True)
    print(f"[2/{n}] teacher: OpenCV SGBM + WLS hole filling on the stereo pairs (no training)",
          flush=True)
    teacher = _train(["recipe.name=sgbm", f"trainer.out_dir={out / 'runs' / 'sgbm_teacher'}",
                      *SGBM, *_bag_data(train_bag, TOPICS.lidar)])
    runs = _train_students(args, out, train_bag, teacher, n)
    print(f"[{n - 1}/{n}] evaluating on the held-out test drive", flush=True)
    prior = _prior(train_bag)
    metrics = {name: _evaluate(str(ckpt), str(teacher), test_bag,
                               out / "eval" / Path(ckpt).parents[1].name, prior)
               for name, ckpt in runs.items()}
    metrics[TEACHER] = _evaluate(str(teacher), "", test_bag, out / "eval" / "teacher", prior)
    metrics.update(metrics[STUDENT_ROW]["baselines"])
    print(f"[{n}/{n}] bag to bag: the student over the test drive", flush=True)
    from depth_kd_core.bag_infer import infer_bag

    infer_bag(test_bag, out / "data" / "test_drive_depth", runs[STUDENT_ROW],
              image_topic=TOPICS.left, info_topic=TOPICS.left_info, overwrite=True)
    atomic_write_text(out / "metrics.md", _report(metrics, prior))
    return {"student": str(runs[STUDENT_ROW]), "teacher": str(teacher),
            "metrics": {k: {m: v for m, v in d.items() if m != "baselines"}
                        for k, d in metrics.items()}}


def _train_students(args, out: Path, train_bag: Path, teacher: Path, n: int) -> dict[str, Path]:
    """Train the TIE-KD student and, with --oracle, the same student on the rendered depth.

    The oracle gets the same steps and optimiser. Returns {report row: last checkpoint}.
    """
    print(f"[3/{n}] distilling a monocular student with TIE-KD ({args.steps} steps)",
          flush=True)
    common = [f"trainer.max_steps={args.steps}", "trainer.val_every_epochs=1000", *STUDENT,
              *OPTIM]
    runs = {STUDENT_ROW: _train(["recipe.name=tie_kd", f"recipe.teacher_checkpoint={teacher}",
                                 "recipe.confidence_weight=true",
                                 f"trainer.out_dir={out / 'runs' / 'tie_kd_student'}", *common,
                                 *_bag_data(train_bag, TOPICS.lidar)])}
    if args.oracle:
        print(f"[4/{n}] oracle: the same student on the rendered ground truth "
              f"({args.steps} steps)", flush=True)
        runs[ORACLE_ROW] = _train(["recipe.name=supervised", "recipe.loss=silog",
                                   f"trainer.out_dir={out / 'runs' / 'oracle_student'}",
                                   *common, *_bag_data(train_bag, TOPICS.depth)])
    return runs


def _report(metrics: dict[str, dict], prior: DepthPrior) -> str:
    s = metrics[STUDENT_ROW]
    return ("# depth_kd demo\n\nHeld-out synthetic drive (another seed), dense ground truth, "
            "whole frame, 0-80 m. The no-image prior is the per-pixel mean log-depth of the "
            f"{prior.images} training frames and the constant their geometric mean "
            f"({prior.constant_m:.1f} m): a student must beat both to be worth running. The "
            "teacher's coverage is the share of pixels it gives a depth.\n\n"
            + baseline_table(metrics)
            + f"\n\nStudent vs teacher agreement: AbsRel {s['agree_abs_rel']:.3f}; "
            f"Spearman rho(sigma, |error|) {s['spearman_sigma_abs_err']:.2f}, "
            f"AUSE {s['ause_abs_err']:.3f}.\n\nFiles: bags in data/ (test_drive_depth holds "
            "/depth_kd/depth, /depth_kd/uncertainty, /depth_kd/depth/colorized), checkpoints "
            "and TensorBoard logs in runs/, per-image CSV, summary.json and PNG grids "
            "(input, depth, ground truth, error, sigma) in eval/.\n")


if __name__ == "__main__":
    sys.exit(main())
