"""Models: encoders, students and teachers, all registered by name.

Importing this package registers every built-in model (each module registers itself).
"""

from depth_kd_core.models import (  # noqa: F401
    adu,
    dacnn,
    monodepth,
    precomputed,
    sdfa,
    segmentation,
    sgbm,
    tiekd,
)
from depth_kd_core.models.base import DepthModel, ModelCfg
from depth_kd_core.models.registry import create_model, list_models, model_cfg, register_model

__all__ = ["DepthModel", "ModelCfg", "create_model", "list_models", "model_cfg",
           "register_model"]
