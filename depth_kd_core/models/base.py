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
    sigmoid_disp: list of (B, 1, H/2^s, W/2^s) Monodepth2 sigmoid outputs, scale s = 0..3.
    valid, confidence: (B, 1, H, W) in [0, 1] (SGBM teacher: match found, left-right check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet statistics, RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
KITTI_MAX_DEPTH_M = 80.0  # Eigen evaluation cap (METHODS.md §6)

OutputKind = Literal["metric_depth", "relative_depth", "disparity_volume", "dpm", "semantics",
                     "pose"]


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
        stereo_input: the model consumes a left/right pair (teachers): its "needs the right
            image" capability, a field because one architecture may be built either way.
        focal_px: focal length (pixels, at input resolution) of the training rig; metric
            output scales with f_cam / focal_px on other cameras (0 = unknown).

    Capabilities that the model's code fixes (class attributes, not config fields, so a
    checkpoint or a YAML file cannot change them); callers ask these instead of a name:
        classical: a non-learned matcher (SGBM): no weights, runs at the camera's own
            resolution, and its depth fx * B / d is already in the camera's metres, so the
            estimator neither resizes its input nor rescales its output.
        batch_keys: batch keys the forward pass reads besides the images, K and baseline
            (the precomputed teacher reads ``teacher_depth``).
        has_sigma (property): the output holds ``sigma`` (metres).
    """

    classical: ClassVar[bool] = False
    batch_keys: ClassVar[frozenset[str]] = frozenset()

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

    @property
    def has_sigma(self) -> bool:
        """Whether the model's output holds ``sigma`` (overridden where it does)."""
        return False

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


class DepthModel(nn.Module):
    """Base of every registered network: owns its config and its input normalisation.

    Subclasses call ``self.prepare(x)`` on RGB input in [0, 1] (B, 3, H, W): it checks the
    shape against ``cfg.size_multiple`` and normalises with ``cfg.mean``/``cfg.std``.
    ``forward(left, right=None, **context)`` returns the model-output dict described in this
    module's docstring; ``context`` may carry ``K`` (B, 3, 3) and ``baseline`` (B,) metres.
    """

    def __init__(self, cfg: ModelCfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("_mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def check_input(self, x: torch.Tensor, name: str = "image") -> None:
        """Raise ValueError naming the problem if x is not (B, 3, H, W) with valid sizes."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.cfg.name}: {name} must be (B, 3, H, W) RGB, got "
                             f"{tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.cfg.size_multiple
        if h % m or w % m:
            raise ValueError(f"{self.cfg.name}: {name} size {h}x{w} must be a multiple of "
                             f"{m} (resize or pad it; DepthEstimator does this for you)")

    def prepare(self, x: torch.Tensor, name: str = "image") -> torch.Tensor:
        """Return a checked and normalised copy of an RGB batch in [0, 1]."""
        self.check_input(x, name)
        return (x - self._mean) / self._std


def freeze(model: nn.Module) -> nn.Module:
    """Make ``model`` a fixed teacher: no parameter requires grad, kept in eval mode.

    ``train()`` on a frozen module is a no-op, so a recipe's ``train()`` cannot switch the
    teacher's BatchNorm/dropout back to training behaviour.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    model.train = lambda mode=True: model  # type: ignore[method-assign]
    return model
