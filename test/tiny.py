"""Tiny variants of every model, registered as ``test_<name>``.

Test encoders (timm's ``test_*`` models) and narrow decoders so CI runs every network fast.
conftest imports this module, so tests build them like any model:
``create_model("test_tiekd_student")`` or the override ``model.name=test_tiekd_student``. Also
``test_classical_matcher``, SGBM under another name.

A process that does not import this module (a node started by a test, a torchrun worker)
does not know these names: give it a checkpoint saved under the production name (the
variant's config records every field) or import this module there.
"""

from dataclasses import dataclass
from typing import ClassVar

from depth_kd_core.models import (
    adu,
    dacnn,
    monodepth,
    precomputed,
    sdfa,
    segmentation,
    sgbm,
    tiekd,
)
from depth_kd_core.models.registry import list_models, register_model

PREFIX = "test_"


@dataclass
class TinyAduCfg(adu.AduCfg):
    encoder: str = "test_swin"
    decoder_channels: tuple[int, ...] = (16, 16, 32, 32)
    heads: int = 2


@dataclass
class TinyAduTeacherCfg(adu.AduTeacherCfg):
    encoder: str = "test_swin"
    decoder_channels: tuple[int, ...] = (16, 16, 32, 32)
    heads: int = 2


@dataclass
class TinyTieKDStudentCfg(tiekd.TieKDStudentCfg):
    encoder: str = "test_mobilenet"
    decoder_channels: tuple[int, ...] = (8, 16, 16, 32, 32)


@dataclass
class TinyMonodepthCfg(monodepth.MonodepthCfg):
    encoder: str = "test_resnet"


@dataclass
class TinyPoseNetCfg(monodepth.PoseNetCfg):
    encoder: str = "test_resnet"


@dataclass
class TinySdfaCfg(sdfa.SdfaCfg):
    encoder: str = "test_swin"
    decoder_channels: tuple[int, int, int, int] = (8, 8, 16, 16)


@dataclass
class TinySegmentationCfg(segmentation.SegmentationCfg):
    encoder: str = "test_resnet"
    fpn_channels: int = 16


@dataclass
class TinySgbmCfg(sgbm.SgbmCfg):
    num_disparities: int = 16


@dataclass
class TinyDacnnCfg(dacnn.DacnnCfg):
    encoder: str = "test_resnet"
    aspp_channels: int = 16
    guidance_channels: int = 4
    decoder_channels: tuple[int, int, int] = (8, 8, 16)


@dataclass
class TinyDacnnTeacherCfg(dacnn.DacnnTeacherCfg):
    encoder: str = "test_resnet"
    aspp_channels: int = 16
    guidance_channels: int = 4
    decoder_channels: tuple[int, int, int] = (8, 8, 16)


@dataclass
class ClassicalMatcherCfg(sgbm.SgbmCfg):
    """SGBM under another name: callers must treat a model by its declared capabilities."""

    classical: ClassVar[bool] = True
    num_disparities: int = 16


PRODUCTION = sorted(list_models())  # before any test_ name is added

register_model("test_adu_student", TinyAduCfg)(adu.adu_student)
register_model("test_stereo_concat_teacher", TinyAduTeacherCfg)(adu.stereo_concat_teacher)
register_model("test_tiekd_student", TinyTieKDStudentCfg)(tiekd.tiekd_student)
register_model("test_monodepth_student", TinyMonodepthCfg)(monodepth.monodepth_student)
register_model("test_pose_net", TinyPoseNetCfg)(monodepth.pose_net)
register_model("test_sdfa_net", TinySdfaCfg)(sdfa.sdfa_net)
register_model("test_segmentation_teacher", TinySegmentationCfg)(segmentation.segmentation_teacher)
register_model("test_sgbm_teacher", TinySgbmCfg)(sgbm.sgbm_teacher)
register_model("test_dacnn_student", TinyDacnnCfg)(dacnn.dacnn_student)
register_model("test_stereo_corr_teacher", TinyDacnnTeacherCfg)(dacnn.stereo_corr_teacher)
register_model("test_precomputed_teacher", precomputed.PrecomputedCfg)(
    precomputed.precomputed_teacher)  # already tiny: no weights
register_model("test_classical_matcher", ClassicalMatcherCfg)(sgbm.sgbm_teacher)

TEST_MODELS = sorted(n for n in list_models() if n.startswith(PREFIX))


def tiny(name: str) -> str:
    """Return the registered tiny variant of production model ``name``."""
    return PREFIX + name


def overrides(section: str, model_name: str) -> list[str]:
    """key=value override giving ``section`` (model/teacher) the tiny variant of a model."""
    return [f"{section}.name={tiny(model_name)}"]
