"""Does distillation work? Each method's student with KD against the same student without KD.

    python -m benchmarks.distillation --profile small            # all five, 3 seeds, 2 cores
    python -m benchmarks.distillation --profile gpu              # 192x640, AMP, one GPU
    python -m benchmarks.distillation --methods tie_kd --seeds 0 --out runs/bench

On the synthetic world (training scenes from one seed, held-out test scenes from another),
for each method: train its teacher (or use the teacher the method requires), train the
student without KD (its no-KD twin: same architecture, same steps, same data) and with KD,
once per training seed (``--seeds``; the teacher is trained once), and evaluate all on the
test scenes against dense ground truth, 0-80 m: over the whole frame (the primary table: the
synthetic world has ground truth everywhere, and a robot uses every pixel) and inside the Garg
crop (the KITTI Eigen protocol's region, the rows the training LiDAR covers). Training
supervision is KITTI-like sparse LiDAR. Per protocol it prints AbsRel, SqRel, RMSE and delta1
of teacher / no-KD / KD (students: mean +- std over the seeds) beside the no-image prior and a
constant, the gap closed (no-KD - KD) / (no-KD - teacher) where the teacher predicts depth,
whether KD wins beyond the seed spread, and Spearman rho(sigma, |error|) for students that
output sigma; writes results.json (per-seed values kept) and results.md into --out
(results.json after every method). Trainings run as jobs on a process pool (--jobs): a teacher
is trained once, no-KD twins are queued at once, a KD student when its teacher is ready, and a
free process takes a teacher first, else the longest queued training. Ctrl-C or SIGTERM stops
the trainings in every worker too; --resume continues them from their last checkpoints.

Profile knobs, identical for every twin and KD student of a run: resolution (--size), student
steps (--steps), the rig's stereo baseline (--baseline; stereo teachers resolve depth to about
fx * B / 1 px, fx = 0.58 W), seeds (--seeds), what the network teachers are trained on
(--teacher-gt: LiDAR like the students, or dense rendered depth), and the resolution TIE-KD's
teacher sees (--teacher-scale K: its depth is precomputed once for the training scenes, as in
the paper, from the stereo pair rendered at K x the students' resolution, and resized to
theirs; its row in the tables is scored the same way).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import torch
import yaml
from torch.utils.data import default_collate

from benchmarks.distillation_report import CROPS, PRIOR, PRIOR_MEDIAN, aggregate, report
from benchmarks.distillation_setup import METHODS, PROFILES, Method, Profile  # noqa: F401
from depth_kd_core.baselines import fit_depth_prior
from depth_kd_core.cli import run_cli
from depth_kd_core.config import dump_yaml
from depth_kd_core.data.config import DataCfg, SyntheticSourceCfg
from depth_kd_core.data.datasets import build_datasets
from depth_kd_core.data.teacher_depth import read_manifest
from depth_kd_core.errors import DepthKDError
from depth_kd_core.evaluate import EvalCfg, Predictor, evaluate, score_baselines
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.precompute_teacher import precompute
from depth_kd_core.runtime import select_device as pick_device
from depth_kd_core.train import Trainer
from depth_kd_core.training.config import TrainConfig, load_train_config

TEACHER_DEPTH = "teacher_depth"  # <out>/<method>/: a precomputed teacher's depth maps


def _pose_encoder(profile: Profile) -> list[str]:
    """Return the overrides that give the pose network the depth student's encoder."""
    enc = [o for o in profile.models.get("monodepth_student", []) if o.startswith("encoder=")]
    return [f"recipe.pose_{enc[0]}"] if enc else []


def _section(prefix: str, model: str, profile: Profile) -> list[str]:
    return [f"{prefix}.name={model}"] + [f"{prefix}.{o}" for o in profile.models.get(model, [])]


def _common(profile: Profile, out: Path, steps: int, seed: int, lr: float | None = None,
            progress: bool = True, gt: str = "lidar") -> list[str]:
    """Return the overrides every training of a run shares; ``gt``: its ground truth."""
    return [f"data.height={profile.height}", f"data.width={profile.width}",
            f"data.synthetic.scenes={profile.train_scenes}", f"data.synthetic.gt={gt}",
            "data.synthetic.val_scenes=8", f"data.synthetic.baseline={profile.baseline}",
            f"data.batch_size={profile.batch_size}", f"trainer.amp={str(profile.amp).lower()}",
            "data.augment.flip_prob=0", f"trainer.max_steps={steps}",
            f"optim.lr={lr or profile.lr}", "optim.schedule=poly", "optim.poly_power=0.9",
            f"trainer.out_dir={out}", f"trainer.progress={str(progress).lower()}",
            "trainer.val_every_epochs=1000", "trainer.checkpoint_every_steps=0",
            "trainer.keep_last=1", f"seed={seed}"]


def _settings(cfg: TrainConfig) -> dict:
    """Return a training's settings, less what cannot change its result.

    Left out: the progress-bar flag (``--jobs 1`` shows bars, pool workers do not) and the
    training's folder (a reused teacher is read where it lies).
    """
    settings = yaml.safe_load(dump_yaml(cfg))
    for key in ("progress", "out_dir"):
        settings["trainer"].pop(key, None)
    return settings


def saved_settings(folder: Path) -> dict | None:
    """Return the settings of the training in ``folder`` (None: no readable ``config.yaml``).

    The file is read back through the config loader, so a key added to the configs since it
    was written takes its default value, as it did then.
    """
    try:
        return _settings(load_train_config(folder / "config.yaml"))
    except (OSError, DepthKDError):
        return None


def continuation(cfg: TrainConfig) -> dict:
    """``Trainer`` arguments that continue the training in ``cfg``'s folder (``--resume``).

    From the folder's newest checkpoint (a finished training is only read back); a folder
    without one starts again, its partial files moved aside into ``replaced_<time>/``.

    Raises:
        DepthKDError: the folder holds a training with other settings.
    """
    out = Path(cfg.trainer.out_dir)
    if (out / "config.yaml").is_file() and saved_settings(out) != _settings(cfg):
        raise DepthKDError(f"--resume: {out} holds a training with other settings than this "
                           f"run's (its config.yaml differs): resume with the profile and "
                           f"knobs it was started with, or choose another --out")
    if any((out / "checkpoints").glob("*.pt")):
        return {"resume": "auto"}
    return {"overwrite": True}


def train(recipe: str, overrides: list[str], log: list[str], resume: bool = False) -> Path:
    """Train in this process; returns the last checkpoint.

    ``resume``: continue the training already in its folder (``continuation``).
    """
    cfg = load_train_config(None, [f"recipe.name={recipe}", *overrides])
    start = time.time()
    trainer = Trainer(cfg, **(continuation(cfg) if resume else {}))
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
                                                val_scenes=profile.test_scenes, gt="dense",
                                                baseline=profile.baseline))
    needs = {"depth_gt"} | ({"right", "baseline"} if stereo else set())
    return build_datasets(dataclasses.replace(data, augment=dataclasses.replace(
        data.augment, enabled=False)), needs)[1]


def baselines(profile: Profile) -> dict:
    """Score the no-image prior and the constant like a model: ``{name: {crop: summary}}``.

    The prior is the per-pixel mean log-depth of the training scenes' rendered depth; it is
    also scored median-scaled per image, the protocol of the relative-depth (video-trained)
    students.
    """
    train = build_datasets(DataCfg(height=profile.height, width=profile.width, augment=dataclasses
                                   .replace(DataCfg().augment, enabled=False),
                                   synthetic=SyntheticSourceCfg(scenes=profile.train_scenes,
                                                                gt="dense")), {"depth_gt"})[0]
    prior = fit_depth_prior(train, max_images=len(train), progress=False)
    data = test_set(profile, stereo=False)
    out: dict = {PRIOR: {}, "constant depth": {}, PRIOR_MEDIAN: {}}
    for crop in CROPS:
        for median in ("off", "on"):
            scored = score_baselines(prior, data, EvalCfg(crop=crop, batch_size=8,
                                                          median_scaling=median))
            if median == "on":
                out[PRIOR_MEDIAN][crop] = scored[PRIOR]
            else:
                out[PRIOR][crop], out["constant depth"][crop] = scored[PRIOR], \
                    scored["constant depth"]
    return out


def at_scale(profile: Profile, scale: int) -> Profile:
    """``profile`` with its resolution multiplied by ``scale`` (what a scaled teacher sees)."""
    return dataclasses.replace(profile, height=profile.height * scale,
                               width=profile.width * scale)


class ScaledTeacher:
    """A teacher as the students get it, behind the evaluation loop's predictor interface.

    It runs on the test scenes rendered at ``scale`` x the students' resolution, and its depth
    is resized (hole-aware) to theirs.
    """

    def __init__(self, predictor: Predictor, profile: Profile, scale: int) -> None:
        self.predictor, self.cfg = predictor, predictor.cfg
        self.scenes = test_set(at_scale(profile, scale), predictor.cfg.stereo_input)

    def __call__(self, batch: dict) -> dict:
        hires = default_collate([self.scenes[int(i)] for i in batch["index"]])
        return self.predictor(hires, out_size=tuple(batch["left"].shape[-2:]))


def score(ckpt: Path | str, profile: Profile, out: Path, scale: int = 1) -> dict:
    """Summary metrics of one checkpoint on the test scenes: ``{crop: summary}``.

    ``scale`` > 1: a teacher that sees the scenes at that multiple of the profile's size.
    """
    predictor = Predictor.load(str(ckpt), pick_device("auto"))
    data = test_set(profile, predictor.cfg.stereo_input)
    scored = ScaledTeacher(predictor, profile, scale) if scale > 1 else predictor
    return {crop: evaluate(scored, data, EvalCfg(out_dir=str(out / crop), batch_size=8,
                                                   grid_every=16, crop=crop),
                           progress=False)["summary"] for crop in CROPS}


def student_data(profile: Profile) -> DataCfg:
    """Return the students' data section (their training scenes, in their order)."""
    return load_train_config(None, ["recipe.name=supervised",
                                    *_common(profile, Path("unused"), 1, 0)]).data


def precompute_teacher(ckpt: str, profile: Profile, folder: Path, progress: bool) -> str:
    """Write the teacher's depth of the students' training scenes into ``folder``.

    The teacher sees them at the profile's ``teacher_scale``. A finished folder is kept
    (``--reuse-teachers``). Returns the folder.
    """
    manifest = read_manifest(folder) if folder.is_dir() else None
    if not (manifest and manifest.get("complete")):
        precompute(student_data(profile), ckpt, folder, profile.teacher_scale,
                   progress=progress)
        return str(folder)
    wanted = {"scale": profile.teacher_scale, "size": [profile.height, profile.width],
              "items": profile.train_scenes}
    found = {k: manifest.get(k) for k in wanted}
    if found != wanted:
        raise DepthKDError(f"the reused teacher depth {folder} was made for {found}, this run "
                           f"needs {wanted}: reuse a run with the same profile and knobs")
    return str(folder)


def teacher_overrides(owner: str, profile: Profile, out: Path, progress: bool = True
                      ) -> list[str]:
    """Training overrides of ``owner``'s teacher: its model, steps, loss and ground truth.

    The ground truth is the profile's ``teacher_gt`` when set, else the method's own.
    A precomputed teacher (``Method.precomputed``) is made at the profile's ``teacher_scale``
    times the students' resolution, SGBM's disparity range scaled with it.
    """
    m = METHODS[owner]
    steps = profile.teacher_steps.get(m.teacher_model, profile.student_steps)
    scale = profile.teacher_scale if m.precomputed else 1
    model = [_scale_disparities(o, scale) for o in _section("model", m.teacher_model, profile)]
    return [*_common(at_scale(profile, scale), out, steps, 1, progress=progress,
                     gt=profile.teacher_gt or m.teacher_gt), *model, *m.teacher_extra]


def reused_teacher(owner: str, profile: Profile, reuse: Path) -> Path | None:
    """Return the checkpoint of ``owner``'s teacher in an earlier run's folder ``reuse``.

    None when that run has none. ``--reuse-teachers`` promises a teacher trained as this run
    would train it, so one trained with other settings is refused.

    Raises:
        DepthKDError: the teacher's ``config.yaml`` is missing or differs from this run's.
    """
    folder = reuse / owner / "teacher"
    ckpt = folder / "checkpoints" / "last.pt"
    if not ckpt.exists():
        return None
    wanted = load_train_config(None, [f"recipe.name={METHODS[owner].teacher_recipe}",
                                      *teacher_overrides(owner, profile, folder)])
    if saved_settings(folder) != _settings(wanted):
        raise DepthKDError(f"--reuse-teachers: the teacher in {folder} was trained with other "
                           f"settings than this run's (its config.yaml is missing or differs): "
                           f"reuse a run with the same profile and knobs")
    return ckpt


def student_steps(profile: Profile, name: str) -> int:
    """Return the training steps of ``name``'s twin and KD student."""
    return profile.method_steps.get(name, profile.student_steps)


def _scale_disparities(override: str, scale: int) -> str:
    """``model.num_disparities=N`` -> N * scale (SGBM: the same nearest depth at any size)."""
    key, _, value = override.partition("=")
    return f"{key}={int(value) * scale}" if key == "model.num_disparities" else override


def teacher_owner(name: str) -> tuple[str, Method]:
    """Return the method whose teacher ``name`` distils from (itself unless ``teacher_from``)."""
    owner = METHODS[name].teacher_from or name
    return owner, METHODS[owner]


def job(recipe: str | None, overrides: list[str], ckpt: str | None, profile: Profile,
        eval_out: Path | None, threads: int = 0, depth_dir: Path | None = None,
        resume: bool = False) -> dict:
    """Run one unit of work, in this process or a pool worker.

    Train ``recipe`` (or take ``ckpt`` when recipe is None; ``resume``: continue the training
    in its folder), precompute its depth of the training scenes into ``depth_dir`` (a
    precomputed teacher; None: not) and score the result into ``eval_out`` (None: no
    scoring). Returns {"ckpt", "log", "scores", "teacher_depth"}.
    ``threads`` > 0 sets torch's intra-op threads.
    """
    if threads:
        torch.set_num_threads(threads)
    log: list[str] = []
    if recipe is not None:
        ckpt = str(train(recipe, overrides, log, resume))
    scale = profile.teacher_scale if depth_dir is not None else 1
    if depth_dir is not None:
        start = time.time()
        depth_dir = precompute_teacher(ckpt, profile, depth_dir, progress=threads == 0)
        log.append(f"teacher depth of the training scenes at x{scale}: {depth_dir} "
                   f"({time.time() - start:.0f}s)")
        print(log[-1], flush=True)
    return {"ckpt": ckpt, "log": log, "teacher_depth": depth_dir,
            "scores": score(ckpt, profile, eval_out, scale) if eval_out is not None else None}


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


def stop_workers(pool) -> None:
    """End the trainings running in ``pool``'s worker processes now.

    ``shutdown(cancel_futures=True)`` only drops queued jobs and waits for the running ones, so
    an interrupted benchmark would leave each worker training to its end. Every training
    continues from its last checkpoint under ``--resume``. ``InlineExecutor`` has no workers.
    """
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


def student_lr(name: str, part: str, profile: Profile) -> float | None:
    """Return the learning rate of ``name``'s twin (``part`` "nokd") or KD student ("kd")."""
    if part == "kd":
        return profile.kd_lr.get(name, profile.method_lr.get(name))
    return profile.method_lr.get(name)


def student_overrides(name: str, part: str, profile: Profile, steps: int,
                      teacher_ckpt: str | None = None,
                      teacher_depth: str | None = None) -> tuple[str, list[str]]:
    """Return the recipe and the overrides that make ``name``'s twin or KD student.

    What the students of a run share (``_common``) is not included. ``teacher_depth``: the
    folder of a precomputed teacher's depth (replaces the checkpoint for the KD student).
    """
    m = METHODS[name]
    overrides = [*_student(name, profile), *m.student_extra]
    if part != "kd":
        return m.nokd_recipe, overrides + m.nokd_extra
    overrides += [*m.kd_extra, *kd_loss_rows(name, profile)]
    if teacher_depth is not None:
        overrides += ["teacher.name=precomputed_teacher",
                      f"data.teacher_depth_dir={teacher_depth}"]
    elif teacher_ckpt is not None:
        overrides.append(f"recipe.teacher_checkpoint={teacher_ckpt}")
    if name == "sdfa_net":  # self-distillation from half-way on
        overrides.append(f"recipe.distill_from_step={steps // 2}")
    return m.kd_recipe, overrides


def kd_loss_rows(name: str, profile: Profile) -> list[str]:
    """Return the KD student's ``recipe.crop_top`` at the profile's height (``kd_loss_top``)."""
    top = METHODS[name].kd_loss_top
    return [f"recipe.crop_top={round(top * profile.height)}"] if top else []


def _student(name: str, profile: Profile) -> list[str]:
    m = METHODS[name]
    student = _section("model", m.student, profile)
    return student + (_pose_encoder(profile) if m.student == "monodepth_student" else [])


class _Run:
    """The job graph of one benchmark run: teachers once, then per seed a twin and a KD student.

    ``results[name]`` fills in as jobs finish (see ``distillation_report``).
    """

    def __init__(self, names: list[str], profile: Profile, out: Path, log: list[str],
                 jobs: int, resume: bool = False) -> None:
        self.names, self.profile, self.out, self.log = names, profile, out, log
        self.resume = resume
        self.parallel = jobs > 1
        self.threads = max(1, torch.get_num_threads() // jobs) if self.parallel else 0
        self.pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) \
            if self.parallel else InlineExecutor()
        self.results = {n: {"method": n, "runs": {str(s): {} for s in profile.seeds}}
                        for n in names}
        self.slots = jobs if self.parallel else 1
        self.pending: dict[Future, tuple[str, str, int]] = {}  # -> (part, name/owner, seed)
        self.queued: list[tuple[float, tuple, tuple]] = []  # (cost, (part, name, seed), args)
        self.waiting: dict[str, list[str]] = {}  # teacher owner -> methods whose KD waits

    def submit(self, part: str, name: str, seed: int, recipe: str | None,
               overrides: list[str], ckpt: str | None, eval_out: Path | None,
               depth_dir: Path | None = None, cost: float = math.inf) -> None:
        """Queue one job for :meth:`dispatch`; ``cost`` (estimated seconds) orders it."""
        self.queued.append((cost, (part, name, seed), (recipe, overrides, ckpt, self.profile,
                                                       eval_out, self.threads, depth_dir,
                                                       self.resume)))

    def dispatch(self) -> None:
        """Start the costliest queued jobs while a slot is free (the first queued on a tie).

        Longest first: the pool ends with short jobs side by side instead of one long one
        alone (runs/b20_all, in the order queued, ended with the last KD student alone for
        about 16 minutes).
        """
        while self.queued and len(self.pending) < self.slots:
            best = max(range(len(self.queued)), key=lambda i: (self.queued[i][0], -i))
            _, key, args = self.queued.pop(best)
            self.pending[self.pool.submit(job, *args)] = key

    def student(self, part: str, name: str, seed: int, teacher_ckpt: str | None,
                teacher_depth: str | None = None) -> None:
        """Submit the no-KD twin or the KD student of ``name`` trained with ``seed``.

        ``teacher_depth``: the folder of a precomputed teacher's depth (replaces the
        checkpoint for the KD student).
        """
        p = self.profile
        folder = self.out / name / f"seed{seed}"
        steps = student_steps(p, name)
        recipe, own = student_overrides(name, part, p, steps, teacher_ckpt, teacher_depth)
        overrides = [*_common(p, folder / part, steps, seed, student_lr(name, part, p),
                              not self.parallel), *own]
        self.submit(part, name, seed, recipe, overrides, None, folder / f"eval_{part}",
                    cost=steps * METHODS[name].step_seconds[part == "kd"])

    def teacher(self, owner: str, reuse: Path | None, earlier: Path | None) -> None:
        """Train (or take ``earlier``, from ``reuse``) and score the teacher of ``owner`` once."""
        m = METHODS[owner]
        scored = self.out / owner / "eval_teacher" if m.teacher_recipe != "segmentation" \
            else None
        depth_dir = (self.out if earlier is None else reuse) / owner / TEACHER_DEPTH \
            if m.precomputed else None
        if earlier is not None:
            self.log.append(f"{m.teacher_recipe} ({m.teacher_model}): reused {earlier}")
            print(self.log[-1], flush=True)
            self.submit("teacher", owner, 0, None, [], str(earlier), scored, depth_dir)
            return
        self.submit("teacher", owner, 0, m.teacher_recipe,
                    teacher_overrides(owner, self.profile, self.out / owner / "teacher",
                                      progress=not self.parallel), None, scored, depth_dir)

    def complete(self, name: str) -> bool:
        return all("kd" in r and "nokd" in r for r in self.results[name]["runs"].values())

    def finished(self, part: str, name: str, seed: int, outcome: dict) -> bool:
        """Record one job's outcome; True when a method has just completed."""
        self.log.extend(outcome["log"])  # the job printed its lines as it finished
        if part == "teacher":
            for waiter in self.waiting[name]:
                if outcome["scores"] is not None:
                    self.results[waiter]["teacher"] = outcome["scores"]
                for s in self.profile.seeds:
                    self.student("kd", waiter, s, outcome["ckpt"], outcome["teacher_depth"])
            return False
        r = self.results[name]
        r["runs"][str(seed)][part] = outcome["scores"]
        if not self.complete(name):
            return False
        r["nokd"], r["kd"] = aggregate(r["runs"], "nokd"), aggregate(r["runs"], "kd")
        return True


def run_methods(names: list[str], profile: Profile, out: Path, log: list[str],
                reuse: Path | None = None, jobs: int = 1, on_result=None,
                resume: bool = False) -> list[dict]:
    """Teachers, no-KD twins and KD students of ``names`` as jobs on ``jobs`` processes.

    A teacher is trained (or taken from ``reuse``) once per owner and scored once; no-KD twins
    (one per seed of the profile) are queued at once, KD students when their teacher is ready.
    A free process takes a teacher first, else the queued training with the most estimated
    seconds (steps x ``Method.step_seconds``).
    ``resume``: every training continues what an interrupted run left in ``out``.
    ``on_result(results)`` is called with the finished methods (in the order asked) whenever a
    method completes. Returns one result dict per method, in the order of ``names``.
    """
    owners = dict.fromkeys(o for o, m in map(teacher_owner, names) if m.teacher_recipe)
    # every reused teacher is checked before any work starts
    reused = {o: reused_teacher(o, profile, reuse) if reuse else None for o in owners}
    run = _Run(names, profile, out, log, jobs, resume)
    for name in names:  # teachers first: they gate the KD students
        owner, m = teacher_owner(name)
        if m.teacher_recipe is None:
            continue
        if owner not in run.waiting:
            run.waiting[owner] = []
            run.teacher(owner, reuse, reused[owner])
        run.waiting[owner].append(name)
    for seed in profile.seeds:
        for name in names:
            run.student("nokd", name, seed, None)
            if teacher_owner(name)[1].teacher_recipe is None:
                run.student("kd", name, seed, None)
    try:
        run.dispatch()
        while run.pending:
            done, _ = wait(list(run.pending), return_when=FIRST_COMPLETED)
            for future in done:
                if run.finished(*run.pending.pop(future), future.result()) and on_result:
                    on_result([run.results[n] for n in names if run.complete(n)])
            run.dispatch()
    except BaseException:  # Ctrl-C, SIGTERM turned into an exception, a failed job
        stop_workers(run.pool)
        raise
    finally:
        run.pool.shutdown(wait=True, cancel_futures=True)
    return [run.results[n] for n in names]


def default_jobs(profile: Profile) -> int:
    """Return the profile's ``jobs``, else 2 on a CPU and 1 on a GPU.

    Two single-threaded trainings beat one two-threaded one on a small CPU (the small
    profile's convolutions are too small to keep two threads busy); one job on a GPU.
    """
    if profile.jobs:
        return profile.jobs
    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _seeds(text: str) -> tuple[int, ...]:
    seeds = tuple(int(s) for s in text.split(",") if s.strip())
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds wants distinct integers >= 0 like 0,1,2, "
                                         f"got {text!r}")
    return seeds


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size wants HEIGHTxWIDTH like 192x640, got {text!r}")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--steps", type=int, default=0,
                        help="override the profile's student steps, every method's (twin and "
                        "KD alike)")
    parser.add_argument("--seeds", type=_seeds, default=None,
                        help="training seeds of each twin/KD pair, e.g. 0,1,2 (default: the "
                        "profile's; small and gpu use 0,1,2)")
    parser.add_argument("--size", type=_size, default=None, metavar="HxW",
                        help="override the profile's training and test resolution")
    parser.add_argument("--baseline", type=float, default=0.0,
                        help="override the synthetic rig's stereo baseline, metres (default "
                        "KITTI's 0.54): wider resolves farther at a low resolution")
    parser.add_argument("--teacher-gt", choices=("lidar", "dense"), default=None,
                        help="what every network teacher trains on (default: each method's own, "
                        "dense for DACNN's correlation teacher, LiDAR for the others): the "
                        "students' sparse LiDAR, or rendered depth everywhere (synthetic "
                        "pre-training); the students always see LiDAR")
    parser.add_argument("--teacher-scale", type=int, default=0, metavar="K",
                        help="TIE-KD's teacher (precomputed, any model) sees the stereo pair at "
                        "K x the students' resolution, its depth resized to theirs (default: "
                        "the profile's: 2 for small, 1 for gpu)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--out", default="runs/distillation_benchmark", help="output folder")
    parser.add_argument("--jobs", type=int, default=0,
                        help="trainings run at once, each in its own process with an equal "
                        "share of the CPU threads (default: the profile's, else 2 on a CPU "
                        "with >= 2 cores, 1 on a GPU); results are the same kind, not "
                        "bit-identical, across values")
    parser.add_argument("--reuse-teachers", metavar="DIR", default=None,
                        help="take trained teachers from an earlier run's --out folder (same "
                        "profile and knobs) instead of training them again; a teacher trained "
                        "with other settings (its config.yaml) is refused")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out (same profile and knobs): "
                        "each training goes on from its newest checkpoint (one per epoch), a "
                        "finished one is only scored again; without it an --out holding an "
                        "earlier run is refused")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks instead of one-line errors")
    return parser


def resolve_profile(args: argparse.Namespace) -> Profile:
    """Return the profile named by ``--profile`` with the command line's knobs applied."""
    profile = PROFILES[args.profile]
    knobs: dict = {}
    if args.steps:
        knobs["student_steps"], knobs["method_steps"] = args.steps, {}
    if args.seeds:
        knobs["seeds"] = args.seeds
    if args.size:
        knobs["height"], knobs["width"] = args.size
    if args.baseline:
        knobs["baseline"] = args.baseline
    if args.teacher_gt:
        knobs["teacher_gt"] = args.teacher_gt
    if args.teacher_scale:
        knobs["teacher_scale"] = args.teacher_scale
    return dataclasses.replace(profile, **knobs)


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: workers stopped, --resume-able


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    return run_cli(lambda: _main(args, argv), debug=args.debug, prog="benchmarks.distillation")


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    profile, out = resolve_profile(args), Path(args.out)
    earlier = [name for name in args.methods if (out / name).exists()]
    if earlier and not args.resume:
        raise DepthKDError(f"--out {out} already holds a run of {', '.join(earlier)}: continue "
                           f"it with --resume (same profile and knobs), or choose another --out")
    start, log = time.time(), []
    reuse = Path(args.reuse_teachers) if args.reuse_teachers else None
    trivial: dict = {}

    def save_results(done: list[dict]) -> None:  # also after each method: survives a crash
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.json", json.dumps(
            {"profile": dataclasses.asdict(profile), "results": done, "log": log,
             "baselines": trivial}, indent=2, default=str) + "\n")

    jobs = args.jobs or default_jobs(profile)
    results = run_methods(args.methods, profile, out, log, reuse, jobs, save_results,
                          args.resume)
    minutes = (time.time() - start) / 60
    command = "python -m benchmarks.distillation " + " ".join(argv if argv is not None
                                                               else sys.argv[1:])
    trivial.update(baselines(profile))
    header = (f"Command: `{command}` (profile `{args.profile}`: {profile.height}x"
              f"{profile.width}, {profile.student_steps} student steps "
              f"{dict(profile.method_steps) or ''}, rig baseline "
              f"{profile.baseline} m, teachers on {profile.teacher_gt or 'their own'} "
              f"depth, TIE-KD's teacher at x{profile.teacher_scale}, seeds "
              f"{','.join(map(str, profile.seeds))}; {jobs} job(s) at a time, "
              f"{minutes:.0f} min)")
    table = report(results, header, trivial)
    print(table)
    save_results(results)
    atomic_write_text(out / "results.md", table + "\n\nRuns:\n" + "\n".join(log) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
