"""The README's main job and the distillation benchmark run end to end (tiny settings)."""

from __future__ import annotations

import json

import pytest
import yaml

from depth_kd_core import demo


@pytest.mark.slow
def test_demo_writes_bags_checkpoints_metrics_and_pngs(tmp_path):
    assert demo.main(["--out", str(tmp_path), "--steps", "3", "--train-frames", "12",
                      "--test-frames", "4"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    student = summary["metrics"]["TIE-KD student (monocular)"]
    teacher = summary["metrics"]["SGBM teacher (stereo, dense)"]
    prior = summary["metrics"]["no-image prior"]
    assert student["images"] == 4 and student["coverage"] == pytest.approx(1.0)
    assert 0.9 < teacher["coverage"] <= 1  # dense: the holes are filled
    assert 0 < teacher["abs_rel"] < 0.5
    assert 0 < prior["abs_rel"] < 1 and "constant depth" in summary["metrics"]
    report = (tmp_path / "metrics.md").read_text()
    assert "| no-image prior |" in report and "| TIE-KD student (monocular) |" in report
    for path in ("data/train_drive/metadata.yaml", "data/test_drive_depth/metadata.yaml",
                 "runs/tie_kd_student/checkpoints/last.pt", "runs/tie_kd_student/config.yaml",
                 "runs/tie_kd_student/git_sha.txt", "eval/tie_kd_student/per_image.csv",
                 "eval/tie_kd_student/grid_00000.png", "eval/teacher/summary.json", "metrics.md"):
        assert (tmp_path / path).exists(), path
    assert list((tmp_path / "runs/tie_kd_student/tb").iterdir())  # TensorBoard events


@pytest.mark.slow
def test_distillation_benchmark_smoke_profile(tmp_path):
    from benchmarks import distillation

    assert distillation.main(["--profile", "smoke", "--methods", "tie_kd", "sdfa_net",
                              "--seeds", "0,1", "--out", str(tmp_path), "--jobs", "2",
                              "--teacher-gt", "dense"]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    results = saved["results"]
    assert [r["method"] for r in results] == ["tie_kd", "sdfa_net"]  # in the order asked
    assert saved["profile"]["seeds"] == [0, 1] and saved["profile"]["baseline"] == 0.54
    for r in results:
        assert set(r["runs"]) == {"0", "1"}  # per-seed values kept
        for part in ("kd", "nokd"):
            per_seed = [r["runs"][s][part]["none"]["abs_rel"] for s in ("0", "1")]
            assert per_seed[0] != per_seed[1]  # the seed reaches the training
            agg = r[part]["none"]["abs_rel"]
            assert agg["n"] == 2 and agg["mean"] == pytest.approx(sum(per_seed) / 2)
            assert agg["min"] == min(per_seed) and agg["max"] == max(per_seed)
            assert r["runs"]["0"][part]["garg"]["images"] == 4  # both protocols
    assert "teacher" in results[0] and "teacher" not in results[1]  # SDFA teaches itself
    md = (tmp_path / "results.md").read_text()
    assert "gap closed" in md and "whole frame" in md and "Garg crop" in md and " ± " in md
    for row in ("no-image prior", "no-image prior, median-scaled", "constant depth"):
        assert md.count(f"| - | {row} (ignores the image) |") == 2  # one row per protocol
    trivial = saved["baselines"]
    assert 0 < trivial["no-image prior"]["none"]["abs_rel"] < \
        trivial["constant depth"]["none"]["abs_rel"]
    assert (tmp_path / "tie_kd/teacher/checkpoints/last.pt").exists()  # dense SGBM, no training
    # TIE-KD's teacher sees the pair at twice the students' size; its depth of their
    # training scenes is precomputed once and read by the KD student
    teacher_depth = tmp_path / "tie_kd" / "teacher_depth"
    manifest = json.loads((teacher_depth / "teacher_depth.json").read_text())
    assert (manifest["scale"], manifest["size"], manifest["items"]) == (2, [64, 192], 8)
    lrs = {f"{m}/{part}": yaml.safe_load((tmp_path / m / "seed1" / part / "config.yaml")
                                         .read_text())["optim"]["lr"]
           for m in ("tie_kd", "sdfa_net") for part in ("kd", "nokd")}
    assert lrs == {"tie_kd/kd": 1e-3, "tie_kd/nokd": 3e-4,  # kd_lr: the KD student only
                   "sdfa_net/kd": 1e-4, "sdfa_net/nokd": 1e-4}  # method_lr: both students
    configs = {f"{m}/{part}": yaml.safe_load((tmp_path / m / "seed1" / part / "config.yaml")
                                             .read_text()) for m in ("tie_kd", "sdfa_net")
               for part in ("kd", "nokd")}
    assert configs["sdfa_net/kd"]["seed"] == 1
    steps = {k: c["trainer"]["max_steps"] for k, c in configs.items()}  # method_steps
    assert steps == {"tie_kd/kd": 6, "tie_kd/nokd": 6, "sdfa_net/kd": 4, "sdfa_net/nokd": 4}
    teacher_cfg = yaml.safe_load((tmp_path / "tie_kd/teacher/config.yaml").read_text())
    assert teacher_cfg["data"]["synthetic"]["gt"] == "dense"  # --teacher-gt: the teacher only
    assert (teacher_cfg["data"]["height"], teacher_cfg["model"]["num_disparities"]) == (128, 64)
    assert configs["tie_kd/kd"]["teacher"]["name"] == "precomputed_teacher"
    # its losses leave out the top 133 of 375 rows, as its paper's on KITTI: 23 of 64
    assert configs["tie_kd/kd"]["recipe"]["crop_top"] == 23
    # its teacher's DPM a normalised Gaussian over the bins, not its paper's softmax plateau
    assert configs["tie_kd/kd"]["recipe"]["dpm_mode"] == "normalized"
    assert configs["tie_kd/kd"]["data"]["teacher_depth_dir"] == str(teacher_depth)
    assert configs["tie_kd/nokd"]["data"]["height"] == 64  # the students' size is unchanged
    assert {c["data"]["synthetic"]["gt"] for c in configs.values()} == {"lidar"}
    betas = {k: c["optim"]["betas"] for k, c in configs.items()}  # SDFA's paper betas, both
    assert betas == {"tie_kd/kd": [0.9, 0.999], "tie_kd/nokd": [0.9, 0.999],
                     "sdfa_net/kd": [0.5, 0.999], "sdfa_net/nokd": [0.5, 0.999]}

    again = tmp_path / "again"  # a second run takes the trained teacher instead of retraining
    reuse = ["--profile", "smoke", "--methods", "tie_kd", "--out", str(again),
             "--reuse-teachers", str(tmp_path), "--jobs", "1", "--seeds", "0"]
    assert distillation.main(reuse) == 2  # not one trained with other knobs (--teacher-gt)
    assert not again.exists()  # refused before any work
    assert distillation.main(reuse + ["--teacher-gt", "dense"]) == 0
    second = json.loads((again / "results.json").read_text())
    assert any("reused" in line for line in second["log"])
    assert not (again / "tie_kd" / "teacher").exists()  # not made again
    assert not (again / "tie_kd" / "teacher_depth").exists()  # nor its depth maps
    rescored = second["results"][0]["teacher"]["none"]["abs_rel"]  # the same teacher, rescored
    # (SGBM's WLS fill differs in the 4th digit between OpenCV thread counts: --jobs 2 vs 1)
    assert rescored == pytest.approx(results[0]["teacher"]["none"]["abs_rel"], rel=1e-3)


@pytest.mark.slow
def test_an_interrupted_benchmark_run_resumes_without_redoing_finished_trainings(tmp_path,
                                                                                capsys):
    from benchmarks import distillation

    argv = ["--profile", "smoke", "--methods", "tie_kd", "--seeds", "0", "--jobs", "1",
            "--out", str(tmp_path)]
    assert distillation.main(argv) == 0
    first = json.loads((tmp_path / "results.json").read_text())["results"][0]
    kd, twin = tmp_path / "tie_kd/seed0/kd", tmp_path / "tie_kd/seed0/nokd"
    finished = (kd / "checkpoints/last.pt").stat().st_mtime_ns
    for ckpt in (twin / "checkpoints").glob("*.pt"):  # the twin was killed before its first
        ckpt.unlink()                                  # checkpoint: only its config was written

    assert distillation.main(argv) == 2  # an earlier run is never overwritten unasked
    assert "--resume" in capsys.readouterr().err
    assert distillation.main(argv + ["--steps", "3", "--resume"]) == 2  # other knobs
    assert "holds a training with other settings" in capsys.readouterr().err
    assert not list((twin / "checkpoints").glob("*.pt"))  # the refusals changed nothing

    assert distillation.main(argv + ["--resume"]) == 0
    resumed = json.loads((tmp_path / "results.json").read_text())["results"][0]
    assert (kd / "checkpoints/last.pt").stat().st_mtime_ns == finished  # not trained again
    assert not list(kd.glob("replaced_*"))
    assert resumed["runs"]["0"]["kd"] == first["runs"]["0"]["kd"]  # only scored again
    assert (twin / "checkpoints/last.pt").is_file()  # the unfinished twin was trained
    assert list(twin.glob("replaced_*/config.yaml"))  # its partial files were kept aside
    twin_steps = yaml.safe_load((twin / "config.yaml").read_text())["trainer"]["max_steps"]
    assert twin_steps == 6
