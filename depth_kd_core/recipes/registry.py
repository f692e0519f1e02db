"""Recipe registry: ``register_recipe``, ``create_recipe(name, ...)``, ``list_recipes()``.

A recipe is one distillation (or teacher / no-KD) method: it owns a trainable ``student``, a
frozen ``teachers`` ModuleDict, and ``training_step(batch, step)``. Recipes register with
their own config dataclass (loss weights, teacher checkpoint …), exactly like models.
"""

from __future__ import annotations

from typing import Any

from depth_kd_core.registry import Registry

RECIPES: Registry[Any] = Registry("recipe", populate="depth_kd_core.recipes")


def register_recipe(name: str, cfg_cls: type):
    """Return a decorator registering ``builder(cfg) -> recipe`` under ``name``."""
    return RECIPES.register(name, cfg_cls)


def create_recipe(name: str, cfg: Any = None, *, model: Any = None, teacher: Any = None,
                  **overrides: Any) -> Any:
    """Build recipe ``name`` from its config (defaults, ``cfg``, then overrides).

    ``model``/``teacher`` are ModelCfg objects for the student and the teacher; None uses the
    recipe's defaults (a KD recipe loads its teacher from ``teacher_checkpoint``).
    """
    entry = RECIPES.entry(name)
    return entry.builder(RECIPES.build_cfg(name, cfg, **overrides), model, teacher)


def default_models(name: str) -> tuple[str, str | None]:
    """(student model name, teacher model name or None) a recipe uses by default."""
    builder = RECIPES.entry(name).builder
    return builder.DEFAULT_STUDENT, builder.DEFAULT_TEACHER


def list_recipes() -> list[str]:
    """Return the registered recipe names, sorted."""
    return RECIPES.names()
