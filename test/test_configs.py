"""Every recipe ships a paper-default KITTI config and a CPU quick config, and they all load."""

from __future__ import annotations

import pytest

from depth_kd_core.recipes.registry import list_recipes
from depth_kd_core.training.config import load_train_config

from conftest import REPO_ROOT

CONFIG = REPO_ROOT / "config"
TRAINING_CONFIGS = sorted(p for p in CONFIG.glob("*.yaml")
                          if p.stem.endswith(("_kitti", "_quick")) and not p.stem.startswith("_"))


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_has_kitti_and_quick_configs(recipe):
    for kind in ("kitti", "quick"):
        path = CONFIG / f"{recipe}_{kind}.yaml"
        assert path.is_file(), f"missing {path.name}"
        assert load_train_config(path).recipe.name == recipe


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.name)
def test_training_config_loads_and_names_an_existing_teacher_recipe_output(path):
    cfg = load_train_config(path)
    assert cfg.trainer.out_dir.startswith("runs/"), "runs go under runs/ (git-ignored)"
    ckpt = cfg.recipe.teacher_checkpoint
    if ckpt:  # a KD config names the checkpoint a teacher config of the same kind writes
        kind = path.stem.rsplit("_", 1)[1]
        teacher_dirs = {load_train_config(p).trainer.out_dir for p in TRAINING_CONFIGS
                        if p.stem.endswith(kind)}
        assert any(ckpt.startswith(d + "/") for d in teacher_dirs), ckpt
