"""Custom ops with a PyTorch reference, a Triton kernel and one dispatching function each.

    depth_aware_conv2d(input, guidance, weight, bias=None, *, alpha, dilation=1,
                       kernel="gaussian", impl="auto")        DACNN eq. 2 (METHODS §4)
    correlation1d(left, right, max_disp=24, symmetric=False, impl="auto")   stereo cost volume

``impl`` ("auto", "reference", "chunked", "triton"; typed :data:`KernelImpl` for configs) picks
the implementation; "auto" uses Triton for CUDA tensors. The Triton modules are imported only
when used (see ``_dispatch``).
"""

from depth_kd_core.kernels._dispatch import IMPLS, KernelImpl
from depth_kd_core.kernels.correlation import DACNN_MAX_DISP, correlation1d
from depth_kd_core.kernels.depth_aware_conv import KERNELS, depth_aware_conv2d

__all__ = ["DACNN_MAX_DISP", "IMPLS", "KERNELS", "KernelImpl", "correlation1d",
           "depth_aware_conv2d"]
