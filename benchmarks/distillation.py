"""Does distillation work? Each method's student with KD against the same student without KD.

    python -m benchmarks.distillation --profile small            # all five, ~60 min on 2 cores
    python -m benchmarks.distillation --profile full             # meant for a GPU
    python -m benchmarks.distillation --methods tie_kd --out runs/bench

On the synthetic world (training scenes from one seed, held-out test scenes from another),
for each method: train its teacher (or use the teacher the method requires), train the
student without KD (its no-KD twin: same architecture, same steps, same data) and with KD,
and evaluate all on the test scenes against dense ground truth, 0-80 m: over the whole frame
(the primary table: the synthetic world has ground truth everywhere, and a robot uses every
pixel) and inside the Garg crop (the KITTI Eigen protocol's region, the rows the training LiDAR
covers). Training supervision is KITTI-like sparse LiDAR. Prints a table per protocol
(teacher / no-KD / KD: AbsRel, SqRel, RMSE, delta1), the gap closed
(no-KD - KD) / (no-KD - teacher) where the teacher predicts depth, and Spearman
rho(sigma, |error|) for the students that output sigma; writes results.json and results.md
into --out (results.json after every method). Trainings run as jobs on a process pool
(--jobs): a teacher is trained once, no-KD twins start at once, a KD student when its teacher
is ready.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import torch

from depth_kd_core.baselines import fit_depth_prior
from depth_kd_core.evaluate import EvalCfg, Predictor, evaluate, score_baselines
from depth_kd_core.data.config import DataCfg, SyntheticSourceCfg
from depth_kd_core.data.datasets import build_datasets
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.train import Trainer
from depth_kd_core.training.config import load_train_config
from depth_kd_core.runtime import select_device as pick_device

REPORTED = ("abs_rel", "sq_rel", "rmse", "a1")


@dataclass
class Profile:
    """Sizes and step counts of one benchmark profile."""

    height: int
    width: int
    train_scenes: int
    test_scenes: int
    batch_size: int
    teacher_steps: dict[str, int]  # teacher model -> steps (a teacher is trained once, reused)
    student_steps: int
    lr: float
    models: dict[str, list[str]] = field(default_factory=dict)  # model name -> overrides
    recipe: dict[str, list[str]] = field(default_factory=dict)  # recipe -> extra overrides
    method_lr: dict[str, float] = field(default_factory=dict)  # method -> its students' lr
    kd_lr: dict[str, float] = field(default_factory=dict)  # method -> its KD student's lr only


SMALL_MODELS = {
    "sgbm_teacher": ["num_disparities=32", "block_size=5"],
    "stereo_corr_teacher": ["encoder=resnet10t", "aspp_channels=64", "context_channels=64",
                            "guidance_channels=8", "decoder_channels=[16,32,64]"],
    "dacnn_student": ["encoder=resnet10t", "aspp_channels=64", "context_channels=64",
                      "guidance_channels=8", "decoder_channels=[16,32,64]"],
    "stereo_concat_teacher": ["encoder=resnet18", "decoder=crf",
                              "decoder_channels=[32,64,96,128]", "heads=2"],
    "adu_student": ["encoder=resnet18", "decoder=crf", "decoder_channels=[32,64,96,128]",
                    "heads=2"],
    "segmentation_teacher": ["encoder=resnet18", "fpn_channels=32"],
    "monodepth_student": ["encoder=resnet10t"],
    "sdfa_net": ["encoder=test_swin", "decoder_channels=[32,32,64,128]"],
    "tiekd_student": ["encoder=mobilenetv2_100", "decoder_channels=[16,32,64,96,128]"],
}

TEST_ENCODERS = {  # tiny encoders for the smoke profile
    "stereo_corr_teacher": ["encoder=test_resnet", "aspp_channels=16", "context_channels=16",
                            "guidance_channels=4", "decoder_channels=[8,8,16]"],
    "dacnn_student": ["encoder=test_resnet", "aspp_channels=16", "context_channels=16",
                      "guidance_channels=4", "decoder_channels=[8,8,16]"],
    "stereo_concat_teacher": ["encoder=test_resnet", "decoder_channels=[16,16,32,32]", "heads=2"],
    "adu_student": ["encoder=test_resnet", "decoder_channels=[16,16,32,32]", "heads=2"],
    "segmentation_teacher": ["encoder=test_resnet", "fpn_channels=16"],
    "monodepth_student": ["encoder=test_resnet"],
    "tiekd_student": ["encoder=test_mobilenet", "decoder_channels=[8,16,16,32,32]"],
}

PROFILES = {
    # a few steps of everything: checks the benchmark runs end to end (used by the tests)
    "smoke": Profile(height=64, width=192, train_scenes=8, test_scenes=4, batch_size=4,
                     teacher_steps={}, student_steps=4, lr=3e-4,
                     method_lr={"sdfa_net": 1e-4}, kd_lr={"tie_kd": 1e-3},
                     models={**SMALL_MODELS, **{m: TEST_ENCODERS[m] for m in TEST_ENCODERS}}),
    "small": Profile(height=64, width=192, train_scenes=384, test_scenes=48, batch_size=4,
                     teacher_steps={"stereo_corr_teacher": 700, "stereo_concat_teacher": 4000,
                                    "segmentation_teacher": 400},
                     student_steps=500, lr=5e-4, models=SMALL_MODELS,
                     # SDFA's disparity-volume softmax collapses onto one level within 10
                     # steps at 5e-4 and stays there (constant disparity); at its paper's
                     # 1e-4 it does not (benchmarks/RESULTS.md)
                     method_lr={"sdfa_net": 1e-4},
                     # TIE-KD's student learns from a flat DPM and a depth SSIM, weak signals
                     # that its paper drives at a 1e-3 peak lr; at 5e-4 it learns the teacher
                     # to AbsRel 0.19 in 500 steps. Its L1 twin is far worse at 1e-3 (AbsRel
                     # 0.53 against 0.38 at 5e-4), so the twin stays at 5e-4 (RESULTS.md)
                     kd_lr={"tie_kd": 1e-3}),
    "full": Profile(height=192, width=640, train_scenes=4000, test_scenes=200, batch_size=8,
                    teacher_steps={}, student_steps=20000, lr=1e-4,
                    models={**SMALL_MODELS,
                            "sdfa_net": ["encoder=swin_tiny"],
                            "tiekd_student": ["encoder=mobilenetv2_100"]}),
}


@dataclass
class Method:
    """How one paper's comparison is run: teacher, KD student, no-KD twin."""

    kd_recipe: str
    nokd_recipe: str
    student: str
    teacher_recipe: str | None = None  # None: no separate teacher training
    teacher_model: str | None = None
    teacher_from: str | None = None  # reuse another method's trained teacher
    kd_extra: list[str] = field(default_factory=list)
    nokd_extra: list[str] = field(default_factory=list)
    teacher_extra: list[str] = field(default_factory=list)


METHODS = {
    "dacnn": Method("dacnn", "supervised", "dacnn_student", "stereo_supervised",
                    "stereo_corr_teacher", teacher_extra=["recipe.loss=l1"],
                    nokd_extra=["recipe.loss=l1", "recipe.smooth_weight=0.01"]),
    "adu_depth": Method("adu_depth", "supervised", "adu_student", "stereo_supervised",
                        "stereo_concat_teacher", teacher_extra=["recipe.loss=silog"],
                        nokd_extra=["recipe.loss=silog"]),
    "x_distill": Method("x_distill", "selfsup_mono", "monodepth_student", "segmentation",
                        "segmentation_teacher"),
    "sdfa_net": Method("sdfa_net", "selfsup_stereo", "sdfa_net"),
    # TIE-KD is teacher-independent and its student sees no ground truth, so the teacher must
    # be dense: the paper distils depth networks. SGBM (the demo's teacher) leaves 36 % of each
    # 64x192 test frame empty (the left num_disparities columns, sky, textureless walls) and
    # the student learns nothing there (AbsRel 0.72 vs 0.37 without KD in the first full run).
    # Here it reuses DACNN's trained stereo network.
    "tie_kd": Method("tie_kd", "supervised", "tiekd_student", teacher_from="dacnn",
                     nokd_extra=["recipe.loss=l1"]),
}


def _pose_encoder(profile: Profile) -> list[str]:
    """The pose network uses the depth student's encoder."""
    enc = [o for o in profile.models.get("monodepth_student", []) if o.startswith("encoder=")]
    return [f"recipe.pose_{enc[0]}"] if enc else []


def _section(prefix: str, model: str, profile: Profile) -> list[str]:
    return [f"{prefix}.name={model}"] + [f"{prefix}.{o}" for o in profile.models.get(model, [])]


def _common(profile: Profile, out: Path, steps: int, seed: int, lr: float | None = None,
            progress: bool = True) -> list[str]:
    return [f"data.height={profile.height}", f"data.width={profile.width}",
            f"data.synthetic.scenes={profile.train_scenes}", "data.synthetic.gt=lidar",
            "data.synthetic.val_scenes=8", f"data.batch_size={profile.batch_size}",
            "data.augment.flip_prob=0", f"trainer.max_steps={steps}",
            f"optim.lr={lr or profile.lr}", "optim.schedule=poly", "optim.poly_power=0.9",
            f"trainer.out_dir={out}", f"trainer.progress={str(progress).lower()}",
            "trainer.val_every_epochs=1000", "trainer.checkpoint_every_steps=0",
            "trainer.keep_last=1", f"seed={seed}"]


def train(recipe: str, overrides: list[str], log: list[str]) -> Path:
    """Train in this process; returns the last checkpoint."""
    cfg = load_train_config(None, [f"recipe.name={recipe}", *overrides])
    start = time.time()
    trainer = Trainer(cfg)
    trainer.fit()
    tail = trainer.history[-20:]  # mean of the last steps' loss terms, for diagnosis
    terms = {k: sum(h[k] for h in tail) / len(tail) for k in tail[0]} if tail else {}
    log.append(f"{recipe} ({cfg.model.name}): {trainer.step} steps in {time.time() - start:.0f}s"
               + (" | " + ", ".join(f"{k} {v:.4g}" for k, v in terms.items()) if terms else ""))
    print(log[-1], flush=True)
    return Path(cfg.trainer.out_dir) / "checkpoints" / "last.pt"


def test_set(profile: Profile, stereo: bool, seed: int = 1000):
    """Held-out scenes (another seed), dense ground truth, native size = training size."""
    data = DataCfg(height=profile.height, width=profile.width,
                   synthetic=SyntheticSourceCfg(seed=seed, scenes=1, val_seed=seed,
                                                val_scenes=profile.test_scenes, gt="dense"))
    needs = {"depth_gt"} | ({"right", "baseline"} if stereo else set())
    return build_datasets(dataclasses.replace(data, augment=dataclasses.replace(
        data.augment, enabled=False)), needs)[1]


CROPS = ("none", "garg")  # whole frame (primary), KITTI Garg crop


def baselines(profile: Profile) -> dict:
    """The no-image prior (per-pixel mean log-depth of the training scenes' rendered depth)
    and the constant, scored like a model: ``{name: {crop: summary}}``."""
    train = build_datasets(DataCfg(height=profile.height, width=profile.width, augment=dataclasses
                                   .replace(DataCfg().augment, enabled=False),
                                   synthetic=SyntheticSourceCfg(scenes=profile.train_scenes,
                                                                gt="dense")), {"depth_gt"})[0]
    prior = fit_depth_prior(train, max_images=len(train), progress=False)
    data = test_set(profile, stereo=False)
    return {name: {crop: summary[name] for crop, summary in
                   ((c, score_baselines(prior, data, EvalCfg(crop=c, batch_size=8)))
                    for c in CROPS)}
            for name in ("no-image prior", "constant depth")}


def score(ckpt: Path | str, profile: Profile, out: Path) -> dict:
    """Summary metrics of one checkpoint on the test scenes: ``{crop: summary}``."""
    predictor = Predictor.load(str(ckpt), pick_device("auto"))
    data = test_set(profile, predictor.cfg.stereo_input)
    return {crop: evaluate(predictor, data, EvalCfg(out_dir=str(out / crop), batch_size=8,
                                                      grid_every=16, crop=crop),
                           progress=False)["summary"] for crop in CROPS}


def teacher_owner(name: str) -> tuple[str, Method]:
    """The method whose teacher ``name`` distils from (itself unless ``teacher_from``)."""
    owner = METHODS[name].teacher_from or name
    return owner, METHODS[owner]


def job(recipe: str | None, overrides: list[str], ckpt: str | None, profile: Profile,
        eval_out: Path | None, threads: int = 0) -> dict:
    """One unit of work, run in this process or a pool worker: train ``recipe`` (or take
    ``ckpt`` when recipe is None) and score the result into ``eval_out`` (None: no scoring).
    Returns {"ckpt", "log", "scores"}. ``threads`` > 0 sets torch's intra-op threads."""
    if threads:
        torch.set_num_threads(threads)
    log: list[str] = []
    if recipe is not None:
        ckpt = str(train(recipe, overrides, log))
    return {"ckpt": ckpt, "log": log, "scores": score(ckpt, profile, eval_out)
            if eval_out is not None else None}


class InlineExecutor:
    """The executor interface for ``--jobs 1``: each job runs in this process when submitted."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller through future.result()
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def run_methods(names: list[str], profile: Profile, out: Path, log: list[str],
                reuse: Path | None = None, jobs: int = 1, on_result=None) -> list[dict]:
    """Teachers, no-KD twins and KD students of ``names`` as jobs on ``jobs`` processes.

    A teacher is trained (or taken from ``reuse``) once per owner and scored once; no-KD twins
    start at once; a KD student starts when its teacher is ready. ``on_result(results)`` is
    called with the finished methods (in the order asked) whenever a method completes.
    Returns one result dict per method, in the order of ``names``.
    """
    parallel = jobs > 1
    threads = max(1, torch.get_num_threads() // jobs) if parallel else 0
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) if parallel \
        else InlineExecutor()
    results = {n: {"method": n} for n in names}
    pending: dict[Future, tuple[str, str]] = {}  # future -> (part, method or teacher owner)
    waiting: dict[str, list[str]] = {}  # teacher owner -> methods whose KD student waits

    def submit(part: str, name: str, recipe: str | None, overrides: list[str],
               ckpt: str | None, eval_out: Path | None) -> None:
        pending[pool.submit(job, recipe, overrides, ckpt, profile, eval_out, threads)] = \
            (part, name)

    def submit_kd(name: str, teacher_ckpt: str | None) -> None:
        m, steps = METHODS[name], profile.student_steps
        lr = profile.kd_lr.get(name, profile.method_lr.get(name))
        kd = [*_common(profile, out / name / "kd", steps, 0, lr,
                       not parallel), *_student(name, profile), *m.kd_extra]
        if teacher_ckpt is not None:
            kd.append(f"recipe.teacher_checkpoint={teacher_ckpt}")
        if name == "sdfa_net":  # self-distillation from the second half of training on
            kd.append(f"recipe.distill_from_step={steps // 2}")
        submit("kd", name, m.kd_recipe, kd, None, out / name / "eval_kd")

    for name in names:  # teachers first: they gate the KD students
        owner, m = teacher_owner(name)
        if m.teacher_recipe is None:
            continue
        if owner not in waiting:
            waiting[owner] = []
            scored = out / owner / "eval_teacher" if m.teacher_recipe != "segmentation" \
                else None
            earlier = reuse / owner / "teacher" / "checkpoints" / "last.pt" if reuse else None
            if earlier is not None and earlier.exists():
                log.append(f"{m.teacher_recipe} ({m.teacher_model}): reused {earlier}")
                print(log[-1], flush=True)
                submit("teacher", owner, None, [], str(earlier), scored)
            else:
                steps = profile.teacher_steps.get(m.teacher_model, profile.student_steps)
                submit("teacher", owner, m.teacher_recipe,
                       [*_common(profile, out / owner / "teacher", steps, 1,
                                 progress=not parallel),
                        *_section("model", m.teacher_model, profile), *m.teacher_extra],
                       None, scored)
        waiting[owner].append(name)
    for name in names:
        m = METHODS[name]
        submit("nokd", name, m.nokd_recipe,
               [*_common(profile, out / name / "nokd", profile.student_steps, 0,
                         profile.method_lr.get(name), not parallel),
                *_student(name, profile), *m.nokd_extra], None, out / name / "eval_nokd")
        if teacher_owner(name)[1].teacher_recipe is None:
            submit_kd(name, None)

    def complete(r: dict) -> bool:  # a KD student only starts once its teacher is done
        return "kd" in r and "nokd" in r

    try:
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                part, name = pending.pop(future)
                outcome = future.result()
                log.extend(outcome["log"])  # the job printed its lines as it finished
                if part == "teacher":
                    for waiter in waiting[name]:
                        if outcome["scores"] is not None:
                            results[waiter]["teacher"] = outcome["scores"]
                        submit_kd(waiter, outcome["ckpt"])
                    continue
                results[name][part] = outcome["scores"]
                if on_result is not None and complete(results[name]):
                    on_result([results[n] for n in names if complete(results[n])])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[n] for n in names]


def _student(name: str, profile: Profile) -> list[str]:
    m = METHODS[name]
    student = _section("model", m.student, profile)
    return student + (_pose_encoder(profile) if m.student == "monodepth_student" else [])


def gap_closed(r: dict, crop: str) -> float | None:
    """(no-KD - KD) / (no-KD - teacher) in AbsRel; None without a better depth teacher."""
    if "teacher" not in r:
        return None
    gap = r["nokd"][crop]["abs_rel"] - r["teacher"][crop]["abs_rel"]
    return (r["nokd"][crop]["abs_rel"] - r["kd"][crop]["abs_rel"]) / gap if gap > 0 else None


def _fmt(m: dict | None) -> str:
    return " / ".join(f"{m[k]:.3f}" for k in REPORTED) if m else "n/a"


def _gap(r: dict, crop: str) -> str:
    if "teacher" not in r:
        return "n/a (teacher predicts no depth)"
    gap = gap_closed(r, crop)
    return "n/a (teacher not better than no-KD)" if gap is None else f"{100 * gap:.0f} %"


CROP_TITLES = {"none": "whole frame", "garg": "Garg crop"}


def report(results: list[dict], profile_name: str, command: str, minutes: float,
           jobs: int = 1, trivial: dict | None = None) -> str:
    lines = [f"Command: `{command}` (profile `{profile_name}`, {jobs} job(s) at a time, "
             f"{minutes:.0f} min)"]
    for crop in CROPS:
        lines += ["", f"AbsRel / SqRel / RMSE / δ1 on the held-out scenes, dense ground truth, "
                  f"0-80 m, **{CROP_TITLES[crop]}**.", "",
                  "| method | teacher | no-KD | KD | gap closed | ρ(σ, abs err) KD |",
                  "|---|---|---|---|---|---|"]
        gaps = [g for g in (gap_closed(r, crop) for r in results) if g is not None]
        for r in results:
            rho = r["kd"][crop].get("spearman_sigma_abs_err")
            lines.append(f"| {r['method']} | {_fmt(r.get('teacher', {}).get(crop))} | "
                         f"{_fmt(r['nokd'][crop])} | {_fmt(r['kd'][crop])} | {_gap(r, crop)} | "
                         f"{'-' if rho is None else f'{rho:.2f}'} |")
        better = sum(r["kd"][crop]["abs_rel"] < r["nokd"][crop]["abs_rel"] for r in results)
        mean_gap = f"{100 * sum(gaps) / len(gaps):.0f} %" if gaps else "n/a"
        lines += ["", f"{CROP_TITLES[crop]}: KD beats no-KD (AbsRel) for {better}/{len(results)} "
                  f"methods; mean gap closed {mean_gap} over the methods whose teacher predicts "
                  "depth better than the no-KD student."]
        for name, scores in (trivial or {}).items():  # what a map ignoring the image gets
            lines.append(f"{name.capitalize()} (ignores the image): {_fmt(scores[crop])}.")
    return "\n".join(lines)


def default_jobs() -> int:
    """Two single-threaded trainings beat one two-threaded one on a small CPU (the small
    profile's convolutions are too small to keep two threads busy); one job on a GPU."""
    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--steps", type=int, default=0,
                        help="override the profile's student steps (pilots)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--out", default="runs/distillation_benchmark", help="output folder")
    parser.add_argument("--jobs", type=int, default=0,
                        help="trainings run at once, each in its own process with an equal "
                        "share of the CPU threads (default: 2 on a CPU with >= 2 cores, 1 on a "
                        "GPU); results are the same kind, not bit-identical, across values")
    parser.add_argument("--reuse-teachers", metavar="DIR", default=None,
                        help="take trained teachers from an earlier run's --out folder (same "
                        "profile) instead of training them again")
    args = parser.parse_args(argv)
    profile, out = PROFILES[args.profile], Path(args.out)
    if args.steps:
        profile = dataclasses.replace(profile, student_steps=args.steps)
    start, log = time.time(), []
    reuse = Path(args.reuse_teachers) if args.reuse_teachers else None

    def save_results(done: list[dict]) -> None:  # also after each method: survives a crash
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.json", json.dumps({"results": done, "log": log,
                                                            "baselines": trivial},
                                                           indent=2, default=str) + "\n")

    trivial: dict = {}
    jobs = args.jobs or default_jobs()
    results = run_methods(args.methods, profile, out, log, reuse, jobs, save_results)
    minutes = (time.time() - start) / 60
    command = "python -m benchmarks.distillation " + " ".join(argv if argv is not None
                                                               else sys.argv[1:])
    trivial.update(baselines(profile))
    table = report(results, args.profile, command, minutes, jobs, trivial)
    print(table)
    save_results(results)
    atomic_write_text(out / "results.md", table + "\n\nRuns:\n" + "\n".join(log) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
