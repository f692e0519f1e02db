"""``ModelCfg``: the typed config every model carries, and the model-output contract.

Training, evaluation, the inference core and the ROS node read preprocessing (input size,
size multiple, normalisation) and post-processing (output kind, depth range) from a model's
``ModelCfg`` instead of re-typing constants. A checkpoint stores it as a plain dict.

Model output (a dict; absent keys are absent, never zero-filled):
    depth:       (B, 1, H, W) metres, at the input resolution.
    log_var:     (B, 1, H, W) log sigma^2 of depth (ADU UEM), sigma in metres.
    sigma:       (B, 1, H, W) metres, predictive standard deviation.
    dpm:         (B, 257, H, W) depth probability map (softmax over bins), TIE-KD.
    disp:        (B, 1, H, W) disparity in pixels of the input image.
    disp_volume: (B, N, H, W) disparity logits (SDFA-Net).
    features:    list of (B, C_l, H_l, W_l) feature maps, coarse levels for distillation.
    guidance:    list of (B, G, H_k, W_k) depth-guidance maps (DACNN).
    semantics:   (B, 19, H, W) class logits (segmentation teacher).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet statistics, RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
KITTI_MAX_DEPTH_M = 80.0  # Eigen evaluation cap (METHODS.md §6)

OutputKind = Literal["metric_depth", "relative_depth", "disparity_volume", "dpm", "semantics"]


@dataclass
class ModelCfg:
    """Fields shared by every model. Subclasses add architecture options.

    Attributes:
        name: registry name (filled in by ``create_model``).
        encoder: timm encoder name (``test_*`` names are tiny CI variants).
        pretrained: load ImageNet weights through timm (needs network; off by default).
        input_height, input_width: training/inference resolution, pixels.
        size_multiple: input sides must be multiples of this (largest encoder stride).
        mean, std: per-channel normalisation of RGB in [0, 1].
        output_kind: what ``depth`` is derived from (metric regression, relative/up-to-scale
            self-supervised depth, disparity volume, depth probability map, or semantics).
        min_depth, max_depth: metres; predictions live in this range.
        stereo_input: the model consumes a left/right pair (teachers).
        focal_px: focal length (pixels, at input resolution) of the training rig; metric
            output scales with f_cam / focal_px on other cameras (0 = unknown).
    """

    name: str = ""
    encoder: str = "resnet18"
    pretrained: bool = False
    input_height: int = 192
    input_width: int = 640
    size_multiple: int = 32
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output_kind: OutputKind = "metric_depth"
    min_depth: float = 1e-3
    max_depth: float = KITTI_MAX_DEPTH_M
    stereo_input: bool = False
    focal_px: float = 0.0

    def validate(self) -> None:
        """Raise ValueError on inconsistent values (called by the config loader)."""
        from depth_kd_core.errors import ConfigError

        if self.input_height % self.size_multiple or self.input_width % self.size_multiple:
            raise ConfigError(
                f"model '{self.name}': input {self.input_height}x{self.input_width} must be a "
                f"multiple of size_multiple={self.size_multiple}"
            )
        if not 0 < self.min_depth < self.max_depth:
            raise ConfigError(
                f"model '{self.name}': need 0 < min_depth < max_depth, got "
                f"{self.min_depth}, {self.max_depth}"
            )
