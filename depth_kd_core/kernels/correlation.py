"""1-D stereo correlation (DACNN teacher, METHODS.md §0 and §4): reference and dispatch.

    c_d(x, y) = (1/C) sum_c f_l^c(x, y) * f_r^c(x - d, y),   0 where x - d is outside the image,

for d = 0..D (rectified stereo, D + 1 channels; DACNN: D = 24 at 1/8 scale = 192 px) or
d = -D..D (DispNet-C convention, 2D + 1 channels) with ``symmetric=True``. Output channel k holds
d = d_min + k. This is FlowNet/DispNet correlation with a 1-pixel kernel along the epipolar line.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depth_kd_core.kernels._dispatch import (
    check_impl,
    check_same_device,
    load_triton_module,
    triton_usable,
)

DACNN_MAX_DISP = 24  # 1/8-scale features, 24 * 8 = 192 px in the input (DACNN §3.2)
CORRELATION_IMPLS = ("auto", "reference", "triton")


def disparities(max_disp: int, symmetric: bool) -> range:
    """Return the disparities of the output channels, in channel order."""
    return range(-max_disp if symmetric else 0, max_disp + 1)


def correlation1d_reference(left: torch.Tensor, right: torch.Tensor, max_disp: int,
                            symmetric: bool = False) -> torch.Tensor:
    """Plain-autograd correlation: one shifted product per disparity.

    The shifted right image is a slice (a view) of one padded copy, so autograd keeps views,
    not D + 1 copies of the features; each product is freed after its channel mean.

    Args:
        left, right: (B, C, H, W) features of the rectified pair.
        max_disp: D, pixels at the feature resolution.
        symmetric: also negative disparities (2D + 1 channels).

    Returns:
        (B, D + 1 or 2D + 1, H, W).
    """
    w = left.shape[3]
    right_pad = F.pad(right, (max_disp, max_disp))  # column j of the padding = x - D + j
    channels = []
    for d in disparities(max_disp, symmetric):
        shifted = right_pad[..., max_disp - d:max_disp - d + w]  # f_r(x - d)
        channels.append((left * shifted).mean(1))
    return torch.stack(channels, dim=1)


def correlation1d(left: torch.Tensor, right: torch.Tensor, max_disp: int = DACNN_MAX_DISP,
                  symmetric: bool = False, impl: str = "auto") -> torch.Tensor:
    """1-D correlation of rectified stereo features along rows (see the module docstring).

    Args:
        left, right: (B, C, H, W) left and right features, same shape, dtype and device.
        max_disp: D >= 0, pixels at the feature resolution (default 24, DACNN at 1/8 scale).
        symmetric: d = -D..D (2D + 1 channels) instead of d = 0..D.
        impl: "auto" (Triton on CUDA, else the reference), "reference" or "triton".

    Returns:
        (B, D + 1 or 2D + 1, H, W) mean over channels of f_l(x) * f_r(x - d).
    """
    check_impl(impl, CORRELATION_IMPLS)
    if left.dim() != 4 or left.shape != right.shape:
        raise ValueError(f"left and right must be (B, C, H, W) of one shape, got "
                         f"{tuple(left.shape)} and {tuple(right.shape)}")
    if not isinstance(max_disp, int) or max_disp < 0:
        raise ValueError(f"max_disp must be an int >= 0, got {max_disp!r}")
    check_same_device(left=left, right=right)
    right = right.to(left.dtype)
    if impl == "auto":
        impl = "triton" if triton_usable(left) else "reference"
    if impl == "reference":
        return correlation1d_reference(left, right, max_disp, symmetric)
    module = load_triton_module("correlation_triton", left, right)
    return module.correlation1d_triton(left.contiguous(), right.contiguous(), max_disp,
                                       symmetric)
