r"""Short pilot of one student of the distillation benchmark, scored against the no-image prior.

    python -m benchmarks.pilot --method x_distill --steps 300 --scenes 64 --out runs/pilot/x
    python -m benchmarks.pilot --method sdfa_net --steps 300 --scenes 64 --out runs/pilot/s \
        recipe.smooth_weight=0.0016

Trains the no-KD twin (``--part nokd``, default) or the KD student (``--part kd``, needs
``--teacher`` for methods with a network teacher) of ``--method`` exactly as the benchmark's
profile does (same models, lr, schedule, data options), on ``--scenes`` training scenes for
``--steps`` steps, then scores it on ``--test-scenes`` held-out scenes (whole frame and Garg
crop) beside the no-image prior fitted on the profile's training scenes. Trailing
``key=value`` arguments override the training config (the change under test). Prints the
loss terms averaged over windows of ``--window`` steps and writes ``pilot.json`` into --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks import distillation as bench
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.train import Trainer
from depth_kd_core.training.config import load_train_config

KEYS = ("abs_rel", "sq_rel", "rmse", "a1")


def pilot_overrides(args: argparse.Namespace, profile: bench.Profile) -> tuple[str, list[str]]:
    """Return the recipe and the benchmark's overrides for the asked student, plus the extras."""
    recipe, own = bench.student_overrides(args.method, args.part, profile, args.steps,
                                          args.teacher or None, args.teacher_depth or None)
    common = bench._common(profile, Path(args.out) / "train", args.steps, args.seed,
                           bench.student_lr(args.method, args.part, profile), progress=False)
    once = [f"trainer.checkpoint_every_steps={args.steps}"]  # not at every (short) epoch
    return recipe, [*common, *once, *own, *args.overrides]


def windows(history: list[dict], size: int) -> list[str]:
    """Loss terms averaged over consecutive windows of ``size`` steps, one line each."""
    lines = []
    for start in range(0, len(history), size):
        part = history[start:start + size]
        terms = {k: sum(h[k] for h in part) / len(part) for k in part[0]}
        lines.append(f"steps {start}-{start + len(part) - 1}: " +
                     ", ".join(f"{k} {v:.4g}" for k, v in terms.items()))
    return lines


def prior_scores(profile: bench.Profile, cache: Path) -> dict:
    """``baselines(profile)``, cached in ``cache`` (the prior costs a rendering of the set)."""
    if cache.exists():
        return json.loads(cache.read_text())
    scores = bench.baselines(profile)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps(scores, indent=2) + "\n")
    return scores


def _row(name: str, scores: dict) -> str:
    return f"{name:<28}" + "   ".join(
        " / ".join(f"{scores[c][k]:.3f}" for k in KEYS) for c in bench.CROPS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=list(bench.METHODS), required=True)
    parser.add_argument("--part", choices=("nokd", "kd"), default="nokd")
    parser.add_argument("--teacher", default="", help="teacher checkpoint for --part kd")
    parser.add_argument("--teacher-depth", default="", metavar="DIR",
                        help="or: precomputed teacher depth of the training scenes "
                        "(python -m depth_kd_core.precompute_teacher), read by "
                        "precomputed_teacher")
    parser.add_argument("--profile", choices=sorted(bench.PROFILES), default="small")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--scenes", type=int, default=64, help="training scenes")
    parser.add_argument("--test-scenes", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=50, help="steps per printed loss line")
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*", help="key=value training-config overrides")
    args = parser.parse_args(argv)
    profile = bench.PROFILES[args.profile]
    recipe, overrides = pilot_overrides(args, dataclasses.replace(profile,
                                                                  train_scenes=args.scenes))
    start = time.time()
    trainer = Trainer(load_train_config(None, [f"recipe.name={recipe}", *overrides]),
                      overwrite=True)
    trainer.fit()
    minutes = (time.time() - start) / 60
    test_profile = dataclasses.replace(profile, test_scenes=args.test_scenes)
    scores = bench.score(Path(args.out) / "train" / "checkpoints" / "last.pt", test_profile,
                         Path(args.out) / "eval")
    size = f"{profile.height}x{profile.width}"
    prior = prior_scores(test_profile, Path(args.out).parent /
                         f"prior_{size}_{profile.train_scenes}_{args.test_scenes}.json")
    lines = [f"{recipe} for {args.method}, {args.steps} steps, {args.scenes} scenes, seed "
             f"{args.seed}, {minutes:.1f} min; overrides: {' '.join(args.overrides) or '-'}",
             *windows(trainer.history, args.window),
             f"{'':<28}AbsRel / SqRel / RMSE / d1: whole frame   Garg crop",
             _row("student", scores),
             *(_row(name, s) for name, s in prior.items())]
    print("\n".join(lines), flush=True)
    atomic_write_text(Path(args.out) / "pilot.json", json.dumps(
        {"argv": argv if argv is not None else sys.argv[1:], "scores": scores, "prior": prior,
         "history": trainer.history, "minutes": minutes}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
