"""The training loop.

Every recipe learns, teachers stay frozen, runs resume exactly, two torchrun processes
agree, and config mistakes are reported by key.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch

from depth_kd_core.recipes.registry import default_models, list_recipes
from depth_kd_core.train import Trainer
from depth_kd_core.train import main as train_main
from depth_kd_core.training.config import load_train_config

from conftest import REPO_ROOT
from tiny import overrides

TINY_DATA = ["data.height=64", "data.width=192", "data.synthetic.scenes=4",
             "data.synthetic.val_scenes=2", "data.batch_size=2", "data.val_batch_size=2",
             "data.augment.enabled=false", "data.synthetic.gt=dense", "trainer.progress=false",
             "trainer.tensorboard=false", "trainer.val_every_epochs=1000", "optim.lr=1e-3"]
RECIPE_EXTRAS = {
    # as the benchmark trains them: the pose net starts driving forward (PoseNetCfg)
    "selfsup_mono": ["recipe.pose_encoder=test_resnet", "recipe.pose_init_forward=0.01"],
    "x_distill": ["recipe.pose_encoder=test_resnet", "recipe.pose_init_forward=0.01"],
    # Monodepth2 trains stereo with a 0.1 "baseline", i.e. a 0.54 m metric near limit: closer
    # starts push the first disparities out of the image, where warps have no gradient
    "stereo_selfsup": ["model.depth_head=inverse", "model.min_depth=0.5"],
}


def tiny_config(recipe: str, out_dir, steps: int, *extra: str):
    student, teacher = default_models(recipe)
    args = [f"recipe.name={recipe}", f"trainer.out_dir={out_dir}", f"trainer.max_steps={steps}",
            *TINY_DATA, *overrides("model", student), *RECIPE_EXTRAS.get(recipe, [])]
    if teacher is not None:
        args += [*overrides("teacher", teacher), "recipe.untrained_teacher_ok=true"]
    return load_train_config(None, [*args, *extra])


def state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def losses(trainer, key="loss") -> list[float]:
    return [h[key] for h in trainer.history]


TRAINABLE = [r for r in list_recipes() if r not in ("sgbm", "sdfa_net")]
# the fast lane (-m "not slow") trains one recipe; the others take 5-40 s each on one core
FAST_RECIPE = "supervised"
RECIPE_PARAMS = [r if r == FAST_RECIPE else pytest.param(r, marks=pytest.mark.slow)
                 for r in TRAINABLE]


@pytest.mark.parametrize("recipe", RECIPE_PARAMS)
def test_every_recipe_lowers_its_loss_and_keeps_its_teacher(recipe, tmp_path):
    trainer = Trainer(tiny_config(recipe, tmp_path, 30))
    teachers_before = {k: state_digest(t) for k, t in trainer.recipe.teachers.items()}
    trainer.fit()
    history = losses(trainer)
    assert len(history) == 30
    assert sum(history[-5:]) / 5 < 0.9 * sum(history[:5]) / 5, history
    for k, t in trainer.recipe.teachers.items():
        assert state_digest(t) == teachers_before[k], f"teacher '{k}' changed"
        assert not t.training and not any(p.requires_grad for p in t.parameters())
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 30 and ckpt["model_name"] == trainer.recipe.student.cfg.name


@pytest.mark.slow
def test_sdfa_stage1_learns_then_stage2_distils(tmp_path):
    trainer = Trainer(tiny_config("sdfa_net", tmp_path, 50, "recipe.distill_from_step=25"))
    trainer.fit()
    stage1, stage2 = trainer.history[:25], trainer.history[25:]
    assert all("sd" not in h for h in stage1) and all("sd" in h for h in stage2)
    rec = [h["rec"] for h in stage1]
    assert sum(rec[-5:]) < 0.9 * sum(rec[:5])  # raw path learns to rebuild the right view
    sd = [h["sd"] for h in stage2]
    assert sum(sd[-5:]) < 0.9 * sum(sd[:5])  # distilled path moves towards the raw depth
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["model_cfg"]["inference_path"] == "distilled"


def test_sgbm_recipe_writes_a_teacher_checkpoint_without_training(tmp_path):
    cfg = load_train_config(None, ["recipe.name=sgbm", f"trainer.out_dir={tmp_path}",
                                   "model.num_disparities=32", *TINY_DATA])
    metrics = Trainer(cfg).fit()
    assert 0 < metrics["abs_rel"] < 0.3 and 0.3 < metrics["coverage"] <= 1.0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["model_name"] == "sgbm_teacher" and ckpt["model_cfg"]["num_disparities"] == 32


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    # stochastic on purpose: augmentations on and Swin's drop-path draws random numbers
    extra = ["data.augment.enabled=true", "data.augment.color_prob=1.0"]
    straight = Trainer(tiny_config("supervised", tmp_path / "a", 6, *extra))
    straight.fit()
    interrupted = Trainer(tiny_config("supervised", tmp_path / "b", 3, *extra))
    interrupted.fit()
    resumed = Trainer(tiny_config("supervised", tmp_path / "b", 6, *extra), resume="auto")
    assert resumed.step == 3
    resumed.fit()
    assert losses(interrupted) == pytest.approx(losses(straight)[:3], rel=1e-6)
    assert losses(resumed) == pytest.approx(losses(straight)[3:], rel=1e-5)
    assert state_digest(resumed.recipe.student) == state_digest(straight.recipe.student)


@pytest.mark.slow
def test_two_process_torchrun_ends_with_identical_weights(tmp_path):
    student, _ = default_models("supervised")
    args = ["recipe.name=supervised", f"trainer.out_dir={tmp_path}", "trainer.max_steps=4",
            *TINY_DATA, *overrides("model", student), "trainer.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(REPO_ROOT / "test/helpers/ddp_worker.py"),
                           *args], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = [(tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4


def test_config_typo_fails_naming_the_key(capsys):
    assert train_main(["recipe.name=tie_kd", "optim.lrr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "optim.lr" in err and "Traceback" not in err
    assert train_main(["recipe.name=tie_kdd"]) == 2
    assert "tie_kd" in capsys.readouterr().err


def test_help_lists_recipes_and_explains_resume(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "--resume" in out and "x_distill" in out and "key=value" in out


@pytest.mark.parametrize("flush", [True, False])
def test_cpu_trainer_flushes_subnormals_only_when_asked(flush, tmp_path):
    if not torch.set_flush_denormal(False):  # False: this CPU has no flush-to-zero mode
        pytest.skip("this CPU has no flush-to-zero mode (torch.set_flush_denormal)")
    try:
        Trainer(tiny_config("supervised", tmp_path, 1, "trainer.device=cpu",
                            f"trainer.flush_denormal={str(flush).lower()}"))
        subnormal = torch.tensor([1e-40])  # float32
        assert ((subnormal * 1.0).item() == 0.0) == flush
    finally:
        torch.set_flush_denormal(False)


def test_cpu_trainer_trains_channels_last_with_the_same_losses(tmp_path):
    nhwc = Trainer(tiny_config("supervised", tmp_path / "a", 3, "trainer.device=cpu"))
    conv = next(m for m in nhwc.recipe.student.modules()
                if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()  # NHWC for real, not a layout both formats share
    nhwc.fit()  # each trainer seeds the global RNG (Swin's drop-path): build, then fit
    nchw = Trainer(tiny_config("supervised", tmp_path / "b", 3, "trainer.device=cpu",
                               "trainer.channels_last=false"))
    nchw.fit()
    assert losses(nhwc) == pytest.approx(losses(nchw), rel=1e-4)
