"""Recipes: one file per distillation method, teacher recipe and no-KD twin.

Importing this package registers every built-in recipe.
"""

from depth_kd_core.recipes import (  # noqa: F401
    adu_depth,
    dacnn,
    sdfa_net,
    selfsup_mono,
    selfsup_stereo,
    supervised,
    teachers,
    tie_kd,
    x_distill,
)
from depth_kd_core.recipes.registry import create_recipe, list_recipes, register_recipe

__all__ = ["create_recipe", "list_recipes", "register_recipe"]
