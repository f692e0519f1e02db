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
    """Decorator registering ``builder(cfg) -> recipe`` under ``name``."""
    return RECIPES.register(name, cfg_cls)


def create_recipe(name: str, cfg: Any = None, **overrides: Any) -> Any:
    """Build recipe ``name`` from its config (defaults, ``cfg``, then overrides)."""
    return RECIPES.create(name, cfg, **overrides)


def list_recipes() -> list[str]:
    """Registered recipe names, sorted."""
    return RECIPES.names()
