"""Tiny model variants (test encoders, narrow decoders) so CI runs every network fast, and
test-only models registered under ``test_*`` names (imported by conftest)."""

import json
from dataclasses import dataclass
from typing import ClassVar

from depth_kd_core.models.registry import register_model
from depth_kd_core.models.sgbm import SgbmCfg, sgbm_teacher


@dataclass
class ClassicalMatcherCfg(SgbmCfg):
    """SGBM under another name: callers must treat a model by its declared capabilities."""

    classical: ClassVar[bool] = True
    num_disparities: int = 16


register_model("test_classical_matcher", ClassicalMatcherCfg)(sgbm_teacher)

TINY = {
    "adu_student": dict(encoder="test_swin", decoder_channels=(16, 16, 32, 32), heads=2),
    "stereo_concat_teacher": dict(encoder="test_swin", decoder_channels=(16, 16, 32, 32),
                                  heads=2),
    "tiekd_student": dict(encoder="test_mobilenet", decoder_channels=(8, 16, 16, 32, 32)),
    "monodepth_student": dict(encoder="test_resnet"),
    "pose_net": dict(encoder="test_resnet"),
    "sdfa_net": dict(encoder="test_swin", decoder_channels=(8, 8, 16, 16)),
    "segmentation_teacher": dict(encoder="test_resnet", fpn_channels=16),
    "sgbm_teacher": dict(num_disparities=16),
    "dacnn_student": dict(encoder="test_resnet", aspp_channels=16, guidance_channels=4,
                          decoder_channels=(8, 8, 16)),
    "stereo_corr_teacher": dict(encoder="test_resnet", aspp_channels=16, guidance_channels=4,
                                decoder_channels=(8, 8, 16)),
}


def overrides(section: str, model_name: str) -> list[str]:
    """key=value overrides giving ``section`` (model/teacher) the tiny variant of a model."""
    out = [f"{section}.name={model_name}"]
    for key, value in TINY.get(model_name, {}).items():
        value = list(value) if isinstance(value, tuple) else value
        out.append(f"{section}.{key}={json.dumps(value)}")
    return out
