"""The distillation benchmark's seed statistics, verdicts and profile knobs (no training)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from concurrent.futures import Future, ProcessPoolExecutor

import pytest
import yaml

from benchmarks import distillation
from benchmarks.distillation_report import aggregate, gap_closed, report, stats, verdict
from depth_kd_core.config import dump_yaml
from depth_kd_core.errors import DepthKDError
from depth_kd_core.training.config import load_train_config


def _summary(abs_rel: float, rmse: float, a1: float, median: bool = False) -> dict:
    return {"abs_rel": abs_rel, "sq_rel": 2 * abs_rel, "rmse": rmse, "a1": a1,
            "median_scaling": median}


def test_stats_are_sample_mean_std_min_max():
    s = stats([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3)
    # sample variance: ((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2 = (16/9 + 1/9 + 25/9) / 2 = 7/3
    assert s["std"] == pytest.approx(math.sqrt(7 / 3))
    assert (s["min"], s["max"], s["n"]) == (1.0, 4.0, 3)
    assert stats([0.5])["std"] == 0.0


def _method(nokd: list[tuple], kd: list[tuple], teacher: tuple | None = None) -> dict:
    runs = {str(i): {"nokd": {c: _summary(*n) for c in ("none", "garg")},
                     "kd": {c: _summary(*k) for c in ("none", "garg")}}
            for i, (n, k) in enumerate(zip(nokd, kd))}
    r = {"method": "m", "runs": runs, "nokd": aggregate(runs, "nokd"),
         "kd": aggregate(runs, "kd")}
    if teacher:
        r["teacher"] = {c: _summary(*teacher) for c in ("none", "garg")}
    return r


def test_gap_closed_uses_the_seed_means():
    r = _method([(0.40, 9, 0.6), (0.44, 9, 0.6)], [(0.32, 8, 0.7), (0.34, 8, 0.7)],
                teacher=(0.30, 7, 0.8))
    # no-KD mean 0.42, KD mean 0.33, teacher 0.30: (0.42 - 0.33) / (0.42 - 0.30) = 0.75
    assert gap_closed(r, "none") == pytest.approx(0.75)
    assert gap_closed(_method([(0.4, 9, 0.6)], [(0.3, 8, 0.7)]), "none") is None


def test_verdict_tells_a_margin_from_seed_noise():
    r = _method([(0.40, 9.0, 0.60), (0.42, 9.2, 0.62)], [(0.30, 9.1, 0.61), (0.31, 9.3, 0.63)])
    kd, nokd = r["kd"]["none"], r["nokd"]["none"]
    assert verdict(kd, nokd, "abs_rel") == "win"  # 0.105 apart, stds 0.014 + 0.007
    assert verdict(kd, nokd, "rmse") == "loss within spread"  # 0.1 m higher, stds 0.14 each
    assert verdict(nokd, kd, "abs_rel") == "loss"  # the other way round
    assert verdict(kd, nokd, "a1") == "win within spread"  # +0.01, stds 0.014 each
    one = _method([(0.4, 9, 0.6)], [(0.3, 8, 0.7)])
    assert verdict(one["kd"]["none"], one["nokd"]["none"], "abs_rel") == "win (1 seed)"
    assert verdict(one["nokd"]["none"], one["kd"]["none"], "rmse") == "loss (1 seed)"
    prior = _summary(0.35, 8.5, 0.65)  # a plain summary (no spread) on one side
    assert verdict(kd, prior, "abs_rel") == "win" and verdict(kd, prior, "a1") == "loss"


def test_report_judges_median_scaled_students_against_the_median_scaled_prior():
    r = _method([(0.9, 20, 0.2, True)] * 2, [(0.5, 10, 0.5, True), (0.52, 10, 0.5, True)])
    trivial = {"no-image prior": {c: _summary(0.4, 9, 0.6) for c in ("none", "garg")},
               "no-image prior, median-scaled": {c: _summary(0.6, 12, 0.4)
                                                 for c in ("none", "garg")},
               "constant depth": {c: _summary(0.7, 14, 0.2) for c in ("none", "garg")}}
    md = report([r], "header", trivial)
    # against the median-scaled prior (0.6 / 12 / 0.4) KD wins all three; against the plain
    # prior (0.4 / 9 / 0.6) it would lose all three
    assert md.count("| m | n/a (no depth teacher) | win / win / win | win / win / win |") == 2
    assert "| m | KD | 0.510 ± 0.014 |" in md


def test_profile_knobs_reach_twin_and_kd_alike(tmp_path):
    args = distillation.build_parser().parse_args(
        ["--profile", "small", "--size", "96x320", "--baseline", "1.5", "--steps", "40",
         "--seeds", "3,4", "--teacher-gt", "dense"])
    profile = distillation.resolve_profile(args)
    assert (profile.height, profile.width, profile.baseline) == (96, 320, 1.5)
    assert (profile.student_steps, profile.seeds) == (40, (3, 4))
    assert distillation.student_steps(profile, "tie_kd") == 40  # --steps: every method's
    small = distillation.PROFILES["small"]  # TIE-KD's slow DPM student gets 1000, both parts
    assert [distillation.student_steps(small, m) for m in ("tie_kd", "dacnn")] == [1000, 500]
    overrides = distillation._common(profile, tmp_path, profile.student_steps, 3)
    for o in ("data.height=96", "data.width=320", "data.synthetic.baseline=1.5",
              "trainer.max_steps=40", "seed=3"):
        assert o in overrides
    assert distillation.test_set(profile, stereo=True)[0]["baseline"].item() == 1.5
    # TIE-KD's KD student leaves out its paper's top 133 of 375 rows, at any height
    assert distillation.kd_loss_rows("tie_kd", profile) == ["recipe.crop_top=34"]
    assert distillation.kd_loss_rows("tie_kd", distillation.PROFILES["gpu"]) == \
        ["recipe.crop_top=68"]
    assert distillation.kd_loss_rows("dacnn", profile) == []
    assert "data.synthetic.gt=lidar" in overrides  # students always see LiDAR
    assert "data.synthetic.gt=dense" in distillation.teacher_overrides("adu_depth", profile,
                                                                       tmp_path)
    with pytest.raises(SystemExit):
        distillation.build_parser().parse_args(["--seeds", "1,1"])
    # TIE-KD's (precomputed) teacher alone sees the pair at K x; SGBM searches K x as far
    scaled = distillation.resolve_profile(distillation.build_parser().parse_args(
        ["--profile", "small", "--teacher-scale", "3"]))
    tie = distillation.teacher_overrides("tie_kd", scaled, tmp_path)
    assert {"data.height=192", "data.width=576", "model.num_disparities=96"} <= set(tie)
    assert "data.height=64" in distillation.teacher_overrides("adu_depth", scaled, tmp_path)
    gpu = distillation.PROFILES["gpu"]
    assert gpu.height >= 192 and gpu.width >= 640 and gpu.amp and gpu.student_steps >= 1000
    assert len(distillation.PROFILES["small"].seeds) >= 3


def test_teachers_train_on_their_methods_ground_truth_unless_the_profile_says(tmp_path):
    small = distillation.PROFILES["small"]

    def gt(owner, profile):  # the teacher's one ground-truth override
        [chosen] = [o for o in distillation.teacher_overrides(owner, profile, tmp_path)
                    if o.startswith("data.synthetic.gt=")]
        return chosen

    # DACNN's correlation teacher is pre-trained on dense rendered depth with SILog (it was
    # weaker than its student outside the LiDAR rows when trained on LiDAR); ADU's on LiDAR
    assert gt("dacnn", small) == "data.synthetic.gt=dense"
    assert "recipe.loss=silog" in distillation.teacher_overrides("dacnn", small, tmp_path)
    assert gt("adu_depth", small) == "data.synthetic.gt=lidar"
    lidar = distillation.resolve_profile(distillation.build_parser().parse_args(
        ["--teacher-gt", "lidar"]))
    assert gt("dacnn", lidar) == "data.synthetic.gt=lidar"


def test_reused_teacher_depth_must_match_the_profile(tmp_path):
    small = distillation.PROFILES["small"]
    (tmp_path / "teacher_depth.json").write_text(json.dumps(
        {"complete": True, "scale": 1, "size": [64, 192], "items": 384}))
    with pytest.raises(DepthKDError, match=r"made for \{'scale': 1, .*needs \{'scale': 2"):
        distillation.precompute_teacher("unused.pt", small, tmp_path, progress=False)
    same = dataclasses.replace(small, teacher_scale=1)  # a matching folder is taken as it is
    assert distillation.precompute_teacher("unused.pt", same, tmp_path, False) == str(tmp_path)


def _saved_teacher(reuse, owner: str, profile) -> tuple:
    """Write ``owner``'s teacher, as ``profile`` trains it, into an earlier run's folder."""
    folder = reuse / owner / "teacher"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.pt").write_bytes(b"weights")
    cfg = load_train_config(None, [f"recipe.name={distillation.METHODS[owner].teacher_recipe}",
                                   *distillation.teacher_overrides(owner, profile, folder)])
    (folder / "config.yaml").write_text(dump_yaml(cfg))
    return folder, folder / "checkpoints" / "last.pt"


def test_a_reused_teacher_must_have_been_trained_as_this_run_would_train_it(tmp_path):
    small = distillation.PROFILES["small"]
    folder, ckpt = _saved_teacher(tmp_path, "adu_depth", small)
    assert distillation.reused_teacher("adu_depth", small, tmp_path) == ckpt
    assert distillation.reused_teacher("dacnn", small, tmp_path) is None  # none to reuse

    longer = dataclasses.replace(small, teacher_steps={**small.teacher_steps,
                                                      "stereo_concat_teacher": 8000})
    with pytest.raises(DepthKDError, match=r"--reuse-teachers: the teacher in .*adu_depth"):
        distillation.reused_teacher("adu_depth", longer, tmp_path)
    with pytest.raises(DepthKDError, match="other settings"):  # the rig's baseline, say
        distillation.reused_teacher("adu_depth", dataclasses.replace(small, baseline=1.0),
                                    tmp_path)

    # a teacher written before a config key existed had that key's default: still the same
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    del saved["data"]["teacher_depth_dir"]
    saved["trainer"]["out_dir"] = "/elsewhere/teacher"  # and was trained in another folder
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    assert distillation.reused_teacher("adu_depth", small, tmp_path) == ckpt

    (folder / "config.yaml").unlink()  # settings unknown: not taken on trust
    with pytest.raises(DepthKDError, match="missing or differs"):
        distillation.reused_teacher("adu_depth", small, tmp_path)


class _RecordingPool:
    """Takes jobs without running them: the order a pool would start them in."""

    def submit(self, fn, *args) -> Future:
        return Future()


def test_a_free_process_takes_a_teacher_first_then_the_longest_queued_training(tmp_path):
    run = distillation._Run(["dacnn", "tie_kd"], distillation.PROFILES["small"], tmp_path, [],
                            jobs=1)
    run.pool = _RecordingPool()
    run.student("nokd", "tie_kd", 0, None)  # 1000 steps x 0.16 s
    run.student("nokd", "dacnn", 0, None)  # 500 x 0.64 s
    run.student("kd", "dacnn", 0, "teacher.pt")  # 500 x 0.83 s
    run.submit("teacher", "adu_depth", 0, "stereo_supervised", [], None, None)
    assert not run.pending  # queued, not started
    started = []
    run.dispatch()
    while run.pending:  # one slot: each start waits for the one before to finish
        started += run.pending.values()
        run.pending.clear()
        if len(started) == 1:  # the teacher is done and queues a KD student
            run.student("kd", "tie_kd", 0, None, "teacher_depth")  # 1000 x 0.52 s
        run.dispatch()
    assert started == [("teacher", "adu_depth", 0), ("kd", "tie_kd", 0), ("kd", "dacnn", 0),
                       ("nokd", "dacnn", 0), ("nokd", "tie_kd", 0)]


def test_an_interrupted_run_stops_the_trainings_in_its_workers(tmp_path, monkeypatch):
    workers = {}

    class SleepingPool(ProcessPoolExecutor):  # every job: a training that lasts 30 s
        def submit(self, fn, *args):
            future = super().submit(time.sleep, 30)
            workers.update(self._processes)
            return future

    def interrupted(futures, return_when):  # Ctrl-C while both workers train
        raise KeyboardInterrupt

    monkeypatch.setattr(distillation, "ProcessPoolExecutor", SleepingPool)
    monkeypatch.setattr(distillation, "wait", interrupted)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        distillation.run_methods(["tie_kd"], distillation.PROFILES["small"], tmp_path, [],
                                 jobs=2)
    assert len(workers) == 2
    assert time.monotonic() - start < 15  # not waiting for the trainings to end
    assert not any(p.is_alive() for p in workers.values())
