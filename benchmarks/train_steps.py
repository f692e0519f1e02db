"""Seconds per training step of every network the distillation benchmark trains, NCHW and NHWC.

    python -m benchmarks.train_steps [--methods dacnn tie_kd] [--steps 12] [--threads 1]

For each method: its network teacher, its no-KD twin and its KD student, built as the ``small``
profile builds them (``benchmarks.pilot``'s overrides: models, losses, data options, 64x192,
batch 4) on 8 training scenes. The KD student distils from a teacher trained for one step
(the same arithmetic per step as a trained one); TIE-KD's reads SGBM's precomputed depth, and
SDFA-Net's KD student is timed in its self-distillation stage. Each cell is the median wall
time of ``--steps`` optimiser steps after 3 warm-up steps (two batches alternated, so data
loading is not counted), on ``--threads`` intra-op threads (1: as each of the benchmark's two
CPU jobs runs), with the networks and images contiguous (NCHW, ``trainer.channels_last=false``)
and channels-last (NHWC, the default). Both layouts train the same losses
(``test/test_train.py``); ratio = NCHW / NHWC.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks import distillation as bench
from benchmarks import pilot
from benchmarks.timing import wall_times
from depth_kd_core.train import Trainer
from depth_kd_core.training.config import load_train_config

SCENES = 8
LAYOUTS = {"NCHW": "false", "NHWC": "true"}


def _layout(channels_last: str) -> list[str]:
    return [f"trainer.channels_last={channels_last}", "trainer.tensorboard=false"]


def teacher_trainer(method: str, profile: bench.Profile, out: Path, channels_last: str,
                    *extra: str) -> Trainer:
    """Return the trainer of ``method``'s teacher as the profile trains it (plus ``extra``)."""
    m = bench.METHODS[method]
    overrides = bench.teacher_overrides(method, profile, out, progress=False)
    return Trainer(load_train_config(None, [f"recipe.name={m.teacher_recipe}", *overrides,
                                            *_layout(channels_last), *extra]))


def teacher_source(method: str, profile: bench.Profile, folder: Path) -> dict:
    """Train ``method``'s teacher for one step; return pilot's --teacher or --teacher-depth."""
    m = bench.METHODS[method]
    if m.teacher_recipe is None:
        return {}
    teacher_trainer(method, profile, folder / "teacher", "true", "trainer.max_steps=1").fit()
    ckpt = str(folder / "teacher" / "checkpoints" / "last.pt")
    if m.precomputed:
        return {"teacher_depth": bench.precompute_teacher(ckpt, profile, folder / "depth",
                                                          progress=False)}
    return {"teacher": ckpt}


def student_trainer(method: str, part: str, profile: bench.Profile, out: Path,
                    channels_last: str, source: dict) -> Trainer:
    """Return the trainer of ``method``'s twin (``nokd``) or KD student (``kd``)."""
    extra = _layout(channels_last)
    if part == "kd" and method == "sdfa_net":
        extra.append("recipe.distill_from_step=0")  # time the self-distillation stage
    args = argparse.Namespace(method=method, part=part, teacher=source.get("teacher", ""),
                              teacher_depth=source.get("teacher_depth", ""), steps=1000,
                              seed=0, out=str(out), overrides=extra)
    recipe, overrides = pilot.pilot_overrides(args, profile)
    return Trainer(load_train_config(None, [f"recipe.name={recipe}", *overrides]))


def seconds_per_step(trainer: Trainer, steps: int, warmup: int = 3) -> float:
    """Median wall time of ``steps`` optimiser steps after ``warmup``, two batches alternated."""
    trainer.recipe.train()
    trainer.sampler.set_epoch(0, 0)
    loader = iter(trainer.train_loader)
    batches = [next(loader), next(loader)]

    def batch(i: int) -> dict:  # a fresh copy, outside the timed span
        return {k: v.clone() if torch.is_tensor(v) else v for k, v in batches[i % 2].items()}

    return statistics.median(wall_times(trainer.train_step, steps, warmup=warmup,
                                        prepare=batch))


def measure(methods: list[str], steps: int, folder: Path) -> list[dict]:
    """One row per network trained: seconds per step in each layout."""
    profile = dataclasses.replace(bench.PROFILES["small"], train_scenes=SCENES)
    rows = []
    for method in methods:
        m = bench.METHODS[method]
        source = teacher_source(method, profile, folder / method)
        parts = ([("teacher", m.teacher_model)] if m.teacher_recipe and not m.precomputed
                 else []) + [("nokd", "no-KD twin"), ("kd", "KD student")]
        for part, label in parts:
            row = {"method": method, "network": label}
            for name, flag in LAYOUTS.items():
                out = folder / method / f"{part}_{name}"
                trainer = (teacher_trainer(method, profile, out, flag) if part == "teacher"
                           else student_trainer(method, part, profile, out, flag, source))
                row[name] = seconds_per_step(trainer, steps)
                print(f"{method} {label} {name}: {row[name] * 1000:.0f} ms/step", flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of ``measure``'s rows, ms per step and the NCHW / NHWC ratio."""
    lines = ["| method | network | NCHW ms/step | NHWC ms/step | NCHW / NHWC |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['network']} | {r['NCHW'] * 1000:.0f} | "
              f"{r['NHWC'] * 1000:.0f} | {r['NCHW'] / r['NHWC']:.2f}x |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=list(bench.METHODS),
                        default=list(bench.METHODS))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per cell")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="train_steps_") as tmp:
        rows = measure(args.methods, args.steps, Path(tmp))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
