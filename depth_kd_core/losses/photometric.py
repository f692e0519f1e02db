"""Photometric losses for self-supervision.

SSIM+L1 error, minimum reprojection with auto-masking (Monodepth2, METHODS §6), and SDFA's
reconstruction + perceptual loss (eq. 14).
"""

from __future__ import annotations

import torch
from torch import nn

from depth_kd_core.layers.ssim import ssim_loss_map

SSIM_WEIGHT = 0.85  # Monodepth2 and SDFA eq. 10: 0.85 SSIM + 0.15 L1


def photometric_error(pred: torch.Tensor, target: torch.Tensor, alpha: float = SSIM_WEIGHT
                      ) -> torch.Tensor:
    """(B, 3, H, W) images -> (B, 1, H, W) alpha mean_c SSIM_loss + (1 - alpha) mean_c |p - t|."""
    l1 = (pred - target).abs().mean(1, keepdim=True)
    ssim = ssim_loss_map(pred, target).mean(1, keepdim=True)
    return alpha * ssim + (1 - alpha) * l1


def min_reprojection_loss(reprojection: list[torch.Tensor],
                          identity: list[torch.Tensor] | None = None,
                          tie_break: float = 1e-5, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over sources, with Monodepth2's auto-masking.

    Args:
        reprojection: per source view, (B, 1, H, W) error of the warped source vs the target.
        identity: per source view, error of the *unwarped* source vs the target; a pixel whose
            identity error is the smallest (static scene, camera-speed object) is masked out.
        tie_break: scale of the random N(0, 1) noise added to identity errors.

    Returns:
        (loss, mask): the mean of the per-pixel minimum, and (B, 1, H, W) 1 where a
        reprojection won (the auto-mask).
    """
    reproj = torch.cat(reprojection, dim=1)
    if identity:
        ident = torch.cat(identity, dim=1)
        noise = torch.randn(ident.shape, generator=generator, device=ident.device,
                            dtype=ident.dtype)
        combined = torch.cat([ident + noise * tie_break, reproj], dim=1)
        value, idx = combined.min(dim=1, keepdim=True)
        mask = (idx >= ident.shape[1]).to(reproj.dtype)
    else:
        value, _ = reproj.min(dim=1, keepdim=True)
        mask = torch.ones_like(value)
    return value.mean(), mask


class VGGPerceptual(nn.Module):
    """torchvision VGG19 ``features`` cut after pool1, pool2, pool3 (SDFA's phi_1..3).

    ``weights="imagenet"`` downloads torchvision's ImageNet weights (network needed);
    ``None`` keeps random weights (tests, offline runs). Frozen.
    """

    SLICES = ((0, 5), (5, 10), (10, 19))

    def __init__(self, weights: str | None = "imagenet") -> None:
        super().__init__()
        from torchvision.models import VGG19_Weights, vgg19

        vgg = vgg19(weights=VGG19_Weights.IMAGENET1K_V1 if weights == "imagenet" else None)
        self.blocks = nn.ModuleList(vgg.features[a:b] for a, b in self.SLICES)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor,
                        features: nn.Module | None = None, perceptual_weight: float = 0.01
                        ) -> torch.Tensor:
    """SDFA eq. 14: mean|I_hat - I| + perceptual_weight * sum_i mean(phi_i(I_hat) - phi_i(I))^2.

    Images are fed to ``features`` mean-subtracted, as the SDFA code does; the target's
    features carry no gradient.
    """
    loss = (pred - target).abs().mean()
    if features is None or perceptual_weight == 0:
        return loss
    mean = torch.tensor((0.411, 0.432, 0.45), device=pred.device).view(1, 3, 1, 1)
    with torch.no_grad():
        target_feats = features(target - mean)
    for fp, ft in zip(features(pred - mean), target_feats):
        loss = loss + perceptual_weight * ((fp - ft) ** 2).mean()
    return loss
