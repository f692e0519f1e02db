"""The training config and ``load_train_config``.

Sections: ``recipe``, ``model`` (student), ``teacher``, ``data``, ``optim``, ``trainer`` and
``seed``. Loaded by ``load_train_config`` from a YAML file and ``key=value`` overrides; the
model/teacher sections default to the recipe's own networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from depth_kd_core.config import deep_merge, parse_overrides, read_yaml
from depth_kd_core.config_build import bounded, build_dataclass, registry_section
from depth_kd_core.data.config import DataCfg
from depth_kd_core.errors import ConfigError
from depth_kd_core.models.base import ModelCfg
from depth_kd_core.models.registry import MODELS
from depth_kd_core.recipes.base import RecipeCfg
from depth_kd_core.recipes.registry import RECIPES, default_models


@dataclass
class OptimCfg:
    """Optimiser and learning-rate schedule (stepped every iteration).

    Schedules: constant; poly (lr (1 - t)^power down to min_lr_ratio * lr); step (x gamma every
    ``step_epochs``); multistep (x gamma at ``milestones`` epochs); onecycle (max lr, div and
    final_div as PyTorch's OneCycleLR).
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = bounded(1e-4, gt=0, hint="the (peak) learning rate, e.g. 1e-4")
    betas: tuple[float, float] = bounded((0.9, 0.999), ge=0, lt=1)
    weight_decay: float = bounded(0.0, ge=0)
    momentum: float = bounded(0.9, ge=0)
    grad_clip: float = bounded(0.0, ge=0)  # max global grad norm; 0 = off
    schedule: Literal["constant", "poly", "step", "multistep", "onecycle"] = "constant"
    poly_power: float = bounded(0.9, gt=0)
    min_lr_ratio: float = bounded(0.0, ge=0, le=1)
    step_epochs: int = bounded(15, ge=1)
    gamma: float = bounded(0.1, gt=0)
    milestones: list[int] = bounded([], ge=0)
    onecycle_div: float = bounded(25.0, gt=0)
    onecycle_final_div: float = bounded(100.0, gt=0)
    onecycle_pct: float = bounded(0.3, gt=0, lt=1)


@dataclass
class TrainerCfg:
    """Loop, device, checkpoints and logging.

    ``max_steps`` > 0 stops after that many optimiser steps (and sets the schedule length);
    otherwise ``epochs`` decides. ``device``: auto (CUDA when present), cpu, cuda, cuda:N.
    """

    out_dir: str = "runs/default"
    epochs: int = bounded(10, ge=1, hint="or set trainer.max_steps")
    max_steps: int = bounded(0, ge=0, hint="0 = run trainer.epochs epochs")
    device: str = "auto"
    amp: bool = True  # CUDA only
    channels_last: bool = True  # NHWC weights and images, on CUDA and on a CPU
    # CPU only: treat subnormal floats as 0. A sharpening softmax (SDFA's disparity volume)
    # fills activations and gradients with subnormals, which run ~5x slower on x86 CPUs.
    flush_denormal: bool = True
    log_every: int = bounded(10, ge=1)
    val_every_epochs: int = bounded(1, ge=1)
    max_val_batches: int = bounded(0, ge=0)  # 0 = the whole validation set
    checkpoint_every_steps: int = bounded(0, ge=0)  # 0 = at each epoch end (and at the end)
    keep_last: int = bounded(3, ge=1)
    tensorboard: bool = True
    image_every_epochs: int = bounded(1, ge=1)
    progress: bool = True
    deterministic: bool = False
    find_unused_parameters: bool = True  # DDP: stage-wise recipes leave parameters idle


@dataclass
class TrainConfig:
    """The whole training config (see README: Configuration)."""

    seed: int = bounded(0, ge=0, lt=2**32)
    recipe: RecipeCfg = registry_section(RECIPES, lambda: _default_recipe())
    model: ModelCfg | None = registry_section(MODELS, lambda: None)
    teacher: ModelCfg | None = registry_section(MODELS, lambda: None)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)


DEFAULT_RECIPE = "tie_kd"


def _default_recipe() -> RecipeCfg:
    return RECIPES.build_cfg(DEFAULT_RECIPE)


def load_train_config(path: str | Path | None = None, overrides=()) -> TrainConfig:
    """YAML file + ``key=value`` overrides -> validated TrainConfig.

    When the student (``model``) section has no ``name``, the recipe's default student is
    used; likewise for ``teacher`` of KD recipes.
    """
    data = read_yaml(path) if path else {}
    data = deep_merge(data, parse_overrides(overrides))
    recipe = data.setdefault("recipe", {})
    if not isinstance(recipe, dict):
        raise ConfigError("config section 'recipe' must be a mapping with a 'name'")
    recipe.setdefault("name", DEFAULT_RECIPE)
    try:
        student, teacher = default_models(recipe["name"])
    except KeyError as exc:
        raise ConfigError(f"config key 'recipe.name': {exc}") from exc
    data["model"] = {"name": student, **(data.get("model") or {})}
    if teacher is not None or data.get("teacher"):
        data["teacher"] = {"name": teacher, **(data.get("teacher") or {})}
    return build_dataclass(TrainConfig, data)
