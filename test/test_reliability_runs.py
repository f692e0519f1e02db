"""Reliability corpus (issue 19), training side.

Bad configs, run folders (second runs, --overwrite, --resume after a kill, foreign
checkpoints, blocked outputs, file modes, stale temporaries), teachers of the wrong kind,
malicious or foreign checkpoints, and a kill -9 mid run; each handled without a traceback,
without silently dropping data, and without losing what is already written. Every case is
generated here (tiny runs).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from depth_kd_core import bag_infer, train
from depth_kd_core.checkpoint import load_checkpoint, save_checkpoint
from depth_kd_core.cli import error_message
from depth_kd_core.errors import BagError, CheckpointError

from bag_helpers import write_bag
from conftest import REPO_ROOT
from inference_helpers import tiny_checkpoint, torch_single_thread  # noqa: F401 - fixture
from reliability_helpers import (
    MONO,
    TINY_RUN,
    dead_pid,
    digest,
    model_checkpoint,
    mono_messages,
    run_cli,
)
from tiny import overrides

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """Make a finished two-step tiny run (checkpoints every step), copied by the tests using it."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert train.main([*TINY_RUN, f"trainer.out_dir={out}",
                       "trainer.checkpoint_every_steps=1"]) == 0
    return out


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.pt")


# ------------------------------------------------------------------------------- configs

@pytest.mark.parametrize("override, key", [
    ("optim.lr=-1", "optim.lr"), ("optim.lr=nan", "optim.lr"), ("optim.lr=.inf", "optim.lr"),
    ("data.batch_size=0", "data.batch_size"), ("data.batch_size=-3", "data.batch_size"),
    ("data.height=-64", "data.height"), ("trainer.max_steps=-5", "trainer.max_steps"),
    ("trainer.epochs=0", "trainer.epochs"), ("trainer.keep_last=0", "trainer.keep_last"),
    ("data.num_workers=-1", "data.num_workers"), ("optim.betas=[0.9,1.5]", "optim.betas[1]"),
    ("data.augment.flip_prob=2", "data.augment.flip_prob"), ("optim.lrr=1", "optim.lr"),
    ("trainer.device=gpu", "trainer.device"),
])
def test_bad_config_values_are_one_line_naming_the_key(override, key, tmp_path, capsys):
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={tmp_path / 'r'}", override],
                        capsys)
    assert code == 2 and (f"'{key}'" in err or f"{key}=" in err), err
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(tmp_path, capsys):
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={tmp_path}",
                                     "trainer.device=cuda"], capsys)
    assert code == 2 and "trainer.device=cuda" in err and "trainer.device=cpu" in err


def test_base_loop_and_bad_files(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\nseed: 1\n")
    code, err = run_cli(train.main, ["--config", tmp_path / "a.yaml"], capsys)
    assert code == 2 and "loop" in err and "a.yaml" in err and "b.yaml" in err
    (tmp_path / "bad.yaml").write_text("optim: [1, 2\n")
    assert run_cli(train.main, ["--config", tmp_path / "bad.yaml"], capsys)[0] == 2
    assert run_cli(train.main, ["--config", tmp_path / "none.yaml"], capsys)[0] == 2
    assert run_cli(train.main, ["--config", tmp_path], capsys)[0] == 2  # a folder


# ------------------------------------------------------------------------------- run folders

def test_second_run_without_resume_is_refused_and_leaves_the_run_intact(run, capsys):
    before = {p: digest(p) for p in run.rglob("*") if p.is_file()}
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={run}", "optim.lr=1e-2"],
                        capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err
    assert {p: digest(p) for p in run.rglob("*") if p.is_file()} == before


def test_overwrite_moves_the_earlier_run_aside(run, capsys):
    old_last = digest(run / "checkpoints" / "last.pt")
    code, _ = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={run}", "--overwrite"], capsys)
    assert code == 0
    aside = list(run.glob("replaced_*"))
    assert len(aside) == 1 and digest(aside[0] / "checkpoints" / "last.pt") == old_last
    assert (aside[0] / "config.yaml").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["best.pt", "last.pt", "step_00000002.pt"]  # the new run alone


def test_written_files_follow_the_umask(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={tmp_path / 'r'}"],
                       capsys)[0] == 0
    finally:
        os.umask(old)
    for rel in ("checkpoints/last.pt", "checkpoints/best.pt", "checkpoints/step_00000002.pt",
                "config.yaml", "git_sha.txt"):
        assert (tmp_path / "r" / rel).stat().st_mode & 0o777 == 0o644, rel


def test_resume_after_kill_while_the_first_last_pt_was_written(run, capsys):
    ckpts = run / "checkpoints"
    (ckpts / "last.pt").unlink()  # the kill: last.pt never renamed into place ...
    pid = dead_pid()
    stale = [ckpts / f".last.pt.{pid}.abcd1234.tmp", ckpts / ".best.pt.q1w2e3r4.tmp",
             ckpts / f".step_00000003.pt.{pid}.x1y2z3w4.tmp"]  # ... its temporaries left
    for p in stale:
        p.write_bytes(b"partial")
    mine = ckpts / "notes.tmp"
    mine.write_text("not ours")
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={run}", "trainer.max_steps=3",
                                     "--resume"], capsys)
    assert code == 0, err
    assert "resumed from" in err and "step_00000002.pt at step 2" in err
    assert not any(p.exists() for p in stale) and mine.read_text() == "not ours"
    assert load_checkpoint(ckpts / "last.pt")["step"] == 3


def test_resume_skips_a_corrupt_newest_step_file(run, capsys):
    (run / "checkpoints" / "step_00000002.pt").write_bytes(b"garbage")
    (run / "checkpoints" / "last.pt").unlink()
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={run}", "--resume"], capsys)
    assert code == 0 and "step_00000001.pt at step 1" in err


def test_resume_without_any_checkpoint(tmp_path, capsys):
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={tmp_path}", "--resume"],
                        capsys)
    assert code == 2 and "no checkpoint to resume" in err


def test_resume_from_a_foreign_or_exported_checkpoint(run, ckpt, tmp_path, capsys):
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={run}", "--resume", ckpt],
                        capsys)
    assert code == 2 and "holds model" in err and "monodepth_student" in err
    trained = load_checkpoint(run / "checkpoints" / "last.pt")
    exported = save_checkpoint(tmp_path / "exported.pt", {k: trained[k] for k in (
        "model_name", "model_cfg", "state_dict")})
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={run}", "--resume",
                                     exported], capsys)
    assert code == 2 and "no training state" in err and "optimizer" in err


def test_output_folder_under_a_file_or_read_only(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={blocker / 'run'}"], capsys)
    assert code == 2 and str(blocker) in err
    real_mkdir = Path.mkdir

    def read_only_mount(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "mnt")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "mkdir", read_only_mount)
        code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={tmp_path / 'mnt/run'}"],
                            capsys)
    assert code == 2 and "Read-only file system" in err and "mnt" in err
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions: the read-only half needs another user")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    code, err = run_cli(train.main, [*TINY_RUN, f"trainer.out_dir={ro / 'run'}"], capsys)
    assert code == 2 and str(ro) in err


def test_teacher_checkpoint_of_the_wrong_kind(tmp_path, capsys):
    seg = model_checkpoint(tmp_path / "seg.pt", "segmentation_teacher")
    student = model_checkpoint(tmp_path / "student.pt", "tiekd_student")
    for recipe, teacher, missing in (("tie_kd", seg, "depth"), ("dacnn", seg, "depth"),
                                     ("x_distill", student, "semantics")):
        from depth_kd_core.recipes.registry import default_models
        args = [*TINY_RUN, f"recipe.name={recipe}", f"recipe.teacher_checkpoint={teacher}",
                *overrides("model", default_models(recipe)[0]),
                f"trainer.out_dir={tmp_path / recipe}"]
        if recipe == "x_distill":
            args.append("recipe.pose_encoder=test_resnet")
        code, err = run_cli(train.main, args, capsys)
        assert code == 2 and str(teacher) in err and f"'{missing}'" in err, err
        assert not (tmp_path / recipe / "checkpoints").exists()


# ------------------------------------------------------------------------------- checkpoints

class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_and_foreign_checkpoints_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "x": _Evil()}, evil)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps([1, 2, 3]))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    bag = write_bag(tmp_path / "in", mono_messages(2))
    for bad in (evil, junk, empty, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError):
            load_checkpoint(bad)
        code, err = run_cli(bag_infer.main, [bag, tmp_path / "o", "--checkpoint", bad,
                                             "--image-topic", MONO[0], "--device", "cpu",
                                             "--no-progress"], capsys)
        assert code == 2 and str(bad.name) in err
    assert not (tmp_path / "pwned").exists()


def test_unexpected_exceptions_say_they_are_bugs(capsys):
    from depth_kd_core.cli import run_cli as boundary

    def broken() -> int:
        raise ZeroDivisionError("oops")

    assert boundary(broken, prog="t") == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        boundary(broken, debug=True)


def test_worker_wrapped_message_is_unwrapped():
    wrapped = BagError("Caught BagError in DataLoader worker process 3.\nOriginal Traceback "
                       "(most recent call last):\n  File \"x.py\", line 1, in f\n"
                       "depth_kd_core.errors.BagError: bag b item 7: truncated\n")
    assert error_message(wrapped) == "bag b item 7: truncated (in a DataLoader worker)"


# ------------------------------------------------------------------------------- kill -9

@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, str(REPO_ROOT / "test/helpers/train_tiny.py"), *TINY_RUN,
            f"trainer.out_dir={out}", "trainer.max_steps=400", "trainer.checkpoint_every_steps=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list((out / "checkpoints").glob("step_*3.pt")):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run([*args[:-2], "trainer.max_steps=6",
                              "trainer.checkpoint_every_steps=1", "--resume"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] >= 6
    assert not list((out / "checkpoints").glob(".*.tmp"))
