"""Tiny model variants (test encoders, narrow decoders) so CI runs every network fast."""

import json

TINY = {
    "adu_student": dict(encoder="test_swin", decoder_channels=(16, 16, 32, 32), heads=2),
    "stereo_concat_teacher": dict(encoder="test_swin", decoder_channels=(16, 16, 32, 32),
                                  heads=2),
    "tiekd_student": dict(encoder="test_mobilenet", decoder_channels=(8, 16, 16, 32, 32)),
    "monodepth_student": dict(encoder="test_resnet"),
    "pose_net": dict(encoder="test_resnet"),
    "sdfa_net": dict(encoder="test_swin", decoder_channels=(8, 8, 16, 16)),
    "segmentation_teacher": dict(encoder="test_resnet", fpn_channels=16),
    "sgbm_teacher": dict(num_disparities=16),  # SGBM leaves the first num_disparities columns empty
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
