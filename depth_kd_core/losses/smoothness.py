"""Edge-aware smoothness regularisers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor, normalize: bool = True
                          ) -> torch.Tensor:
    """mean(|dx d| e^{-mean_c |dx I|}) + mean(|dy d| e^{-mean_c |dy I|}), forward differences.

    Monodepth2 (METHODS §6) on mean-normalised disparity d / (mean(d) + 1e-7) when
    ``normalize``; DACNN's L_smooth (eq. 4) on depth with ``normalize=False``.
    disp (B, 1, H, W); image (B, 3, H, W) in [0, 1] at the same size.
    """
    if normalize:
        disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    dx_d = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    dy_d = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    dx_i = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    dy_i = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (dx_d * torch.exp(-dx_i)).mean() + (dy_d * torch.exp(-dy_i)).mean()


GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def sdfa_smoothness(disp: torch.Tensor, image: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """SDFA-Net eq. 16-17 on disparity in pixels (no normalisation).

    x term: (|D(x) - D(x-1)| + |D(x) - D(x+1)|) exp(-gamma |2 I(x) - I(x-1) - I(x+1)|), the
    same vertically, with I the grayscale of the clean image and replicate padding; the loss is
    the mean of the x term plus the mean of the y term.
    """
    w = torch.tensor(GRAY_WEIGHTS, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    gray = (image * w).sum(1, keepdim=True)
    d = F.pad(disp, (1, 1, 1, 1), mode="replicate")
    g = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    dc, gc = d[..., 1:-1, 1:-1], g[..., 1:-1, 1:-1]
    x_term = ((dc - d[..., 1:-1, :-2]).abs() + (dc - d[..., 1:-1, 2:]).abs()) * \
        torch.exp(-gamma * (2 * gc - g[..., 1:-1, :-2] - g[..., 1:-1, 2:]).abs())
    y_term = ((dc - d[..., :-2, 1:-1]).abs() + (dc - d[..., 2:, 1:-1]).abs()) * \
        torch.exp(-gamma * (2 * gc - g[..., :-2, 1:-1] - g[..., 2:, 1:-1]).abs())
    return x_term.mean() + y_term.mean()
