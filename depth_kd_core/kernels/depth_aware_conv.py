"""Depth-aware convolution (DACNN eq. 2, METHODS.md §0 and §4): reference, chunked, dispatch.

    f'_j(p) = b_j + sum_i sum_{o in P_d} w_ij(o) * K(g(p), g(p+o)) * f_i(p+o),
    P_d = {-d, 0, d}^2,  K = exp(-alpha * ||g(p) - g(p+o)||^2_2)   ("gaussian", the default)
                    or K = exp(-alpha * ||g(p) - g(p+o)||_1)       ("l1")

Taps outside the image contribute 0 (zero padding of ``f``; the value of K there is irrelevant).
The centre tap always has K = 1. The "l1" variant is Harley et al.'s multi-channel embedding
weight and, with a single guidance channel (G = 1), Wang & Neumann's exp(-alpha |dD|).

Implementations (all differentiable in input, guidance, weight, bias and alpha):
    reference: one ``F.unfold`` of the whole input (9*C*H*W values held, and kept for backward);
        the specification the others are tested against.
    chunked: the same arithmetic on bands of output rows inside a custom autograd Function that
        keeps only its inputs and recomputes each band in backward, so at most one band's
        9*C*rows*W unfold is alive at a time (CPU path for large maps).
    triton: fused kernels that evaluate K on the fly (``depth_aware_conv_triton``), CUDA path.
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

KERNELS: tuple[str, ...] = ("gaussian", "l1")
TAPS = 9  # 3x3 kernel (DACNN eq. 2)
# Bytes one band of the chunked path may unfold at once; the benchmark (benchmarks/RESULTS.md)
# shows bands this size run as fast as the full unfold on CPU while bounding memory.
DEFAULT_CHUNK_BYTES = 32 * 2**20


def kernel_weights(g_centre: torch.Tensor, g_taps: torch.Tensor, alpha: torch.Tensor,
                   kernel: str) -> torch.Tensor:
    """K(g(p), g(p+o)) for every tap.

    Args:
        g_centre: (B, G, 1, R, W) guidance at the output pixels p.
        g_taps: (B, G, 9, R, W) guidance at p + o (any value where p + o is outside the image).
        alpha: scalar tensor, the kernel's inverse bandwidth (per unit of guidance^2 or guidance).
        kernel: "gaussian" (squared L2 distance) or "l1".

    Returns:
        (B, 9, R, W) weights in (0, 1] for alpha >= 0.
    """
    diff = g_centre - g_taps
    dist = diff.square().sum(1) if kernel == "gaussian" else diff.abs().sum(1)
    return torch.exp(-alpha * dist)


def _combine(x_cols: torch.Tensor, k: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor | None) -> torch.Tensor:
    """Sum of w_ij(o) * K(p, o) * f_i(p+o) over i and o: one matmul per batch.

    Args:
        x_cols: (B, C, 9, R, W) input at p + o (0 outside the image).
        k: (B, 9, R, W) kernel weights.
        weight: (C', C, 3, 3); its (C, 3, 3) flattening matches F.unfold's (C, 9) order.
        bias: (C',) or None.

    Returns:
        (B, C', R, W).
    """
    b, c, _, r, w = x_cols.shape
    cols = (x_cols * k.unsqueeze(1)).reshape(b, c * TAPS, r * w)
    out = torch.matmul(weight.reshape(weight.shape[0], c * TAPS), cols)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(b, -1, r, w)


def depth_aware_conv2d_reference(input: torch.Tensor, guidance: torch.Tensor,
                                 weight: torch.Tensor, bias: torch.Tensor | None,
                                 alpha: torch.Tensor, dilation: int = 1,
                                 kernel: str = "gaussian") -> torch.Tensor:
    """Plain-autograd depth-aware convolution over the full unfold (the specification).

    Args:
        input: (B, C, H, W) features f.
        guidance: (B, G, H, W) depth guidance g.
        weight: (C', C, 3, 3) filter w.
        bias: (C',) or None.
        alpha: scalar tensor.
        dilation: tap spacing d in pixels.
        kernel: "gaussian" or "l1".

    Returns:
        (B, C', H, W) output f'.
    """
    b, _, h, w = input.shape
    unfold = dict(kernel_size=3, dilation=dilation, padding=dilation)
    x_cols = F.unfold(input, **unfold).view(b, -1, TAPS, h, w)
    g_cols = F.unfold(guidance, **unfold).view(b, -1, TAPS, h, w)
    k = kernel_weights(guidance.unsqueeze(2), g_cols, alpha, kernel)
    return _combine(x_cols, k, weight, bias)


def _band_cols(t: torch.Tensor, r0: int, r1: int, d: int, h: int, lo: int = 0) -> torch.Tensor:
    """Unfold of image rows [r0, r1) at dilation d, reading only rows [r0-d, r1+d).

    Args:
        t: (B, C, n, W) rows [lo, lo + n) of an image of height h; they must include the
            in-image part of [r0 - d, r1 + d).
        r0, r1: output band, image rows.
        d: dilation, pixels.
        h: image height, pixels.
        lo: image row of ``t``'s first row.

    Returns:
        (B, C, 9, r1 - r0, W), zeros where p + o is outside the image.
    """
    top, bottom = max(0, r0 - d), min(h, r1 + d)
    slab = F.pad(t[:, :, top - lo:bottom - lo], (d, d, top - (r0 - d), (r1 + d) - bottom))
    cols = F.unfold(slab, kernel_size=3, dilation=d)
    return cols.view(t.shape[0], t.shape[1], TAPS, r1 - r0, t.shape[3])


def _band_forward(x: torch.Tensor, g: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None, alpha: torch.Tensor, d: int, kernel: str,
                  r0: int, r1: int, h: int, lo: int = 0) -> torch.Tensor:
    """Output rows [r0, r1): the reference arithmetic restricted to one band.

    ``x`` and ``g`` hold image rows [lo, lo + n) of an image of height h (see _band_cols).
    """
    g_centre = g[:, :, r0 - lo:r1 - lo].unsqueeze(2)
    k = kernel_weights(g_centre, _band_cols(g, r0, r1, d, h, lo), alpha, kernel)
    return _combine(_band_cols(x, r0, r1, d, h, lo), k, weight, bias)


def band_rows(input: torch.Tensor, chunk_rows: int | None) -> int:
    """Rows per band: ``chunk_rows`` or as many as fit :data:`DEFAULT_CHUNK_BYTES` (>= 1)."""
    if chunk_rows is not None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        return chunk_rows
    b, c, _, w = input.shape
    row_bytes = b * c * TAPS * w * input.element_size()
    return max(1, DEFAULT_CHUNK_BYTES // max(1, row_bytes))


class _ChunkedDepthAwareConv(torch.autograd.Function):
    """Band-by-band forward; backward recomputes each band (activation checkpointing per band).

    Only the inputs are saved, so forward and backward each hold one band's unfold
    (9*C*rows*W values) plus its autograd intermediates at a time, never the full 9*C*H*W.
    """

    @staticmethod
    def forward(ctx, x, g, weight, bias, alpha, d, kernel, rows):
        ctx.save_for_backward(x, g, weight, alpha)
        ctx.conf = (bias is not None, d, kernel, rows)
        h = x.shape[2]
        out = x.new_empty(x.shape[0], weight.shape[0], h, x.shape[3])
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            out[:, :, r0:r1] = _band_forward(x, g, weight, bias, alpha, d, kernel, r0, r1, h)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, g, weight, alpha = ctx.saved_tensors
        has_bias, d, kernel, rows = ctx.conf
        need = ctx.needs_input_grad
        grads = [torch.zeros_like(t) if need[i] else None
                 for i, t in enumerate((x, g, weight))] + [None, None]
        grads[4] = torch.zeros_like(alpha) if need[4] else None
        h = x.shape[2]
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            lo, hi = max(0, r0 - d), min(h, r1 + d)
            _accumulate_band_grads(grads, need, x, g, weight, alpha, d, kernel, r0, r1, lo, hi,
                                   grad_out[:, :, r0:r1])
        if has_bias and need[3]:
            grads[3] = grad_out.sum((0, 2, 3))
        return (*grads, None, None, None)


def _accumulate_band_grads(grads, need, x, g, weight, alpha, d, kernel, r0, r1, lo, hi,
                           grad_band) -> None:
    """Recompute band [r0, r1) from the input rows [lo, hi) it reads; add its gradients."""
    with torch.enable_grad():
        # The band reads only rows [lo, hi): make those slices the leaves so each gradient
        # is band-sized, then add it into the full-size accumulators.
        leaves = [x[:, :, lo:hi].detach(), g[:, :, lo:hi].detach(), weight.detach(),
                  alpha.detach()]
        for leaf, flag in zip(leaves, (need[0], need[1], need[2], need[4])):
            leaf.requires_grad_(flag)
        xs, gs, ws, al = leaves
        out = _band_forward(xs, gs, ws, None, al, d, kernel, r0, r1, x.shape[2], lo)
        wanted = [(i, leaf) for i, leaf in zip((0, 1, 2, 4), leaves) if leaf.requires_grad]
        if not wanted:
            return
        band_grads = torch.autograd.grad(out, [leaf for _, leaf in wanted], grad_band)
    for (i, _), gr in zip(wanted, band_grads):
        if i < 2:
            grads[i][:, :, lo:hi] += gr
        else:
            grads[i] += gr



def _check_args(input, guidance, weight, bias, alpha, dilation, kernel) -> None:
    """Shape/type validation with messages that name the bad argument."""
    if input.dim() != 4 or guidance.dim() != 4:
        raise ValueError(f"input and guidance must be (B, C, H, W) and (B, G, H, W), got "
                         f"{tuple(input.shape)} and {tuple(guidance.shape)}")
    if guidance.shape[0] != input.shape[0] or guidance.shape[2:] != input.shape[2:]:
        raise ValueError(f"guidance {tuple(guidance.shape)} must match input "
                         f"{tuple(input.shape)} in batch and H, W; resize it to the feature "
                         "resolution first")
    if weight.shape != (weight.shape[0], input.shape[1], 3, 3):
        raise ValueError(f"weight must be (C_out, {input.shape[1]}, 3, 3), got "
                         f"{tuple(weight.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}")
    if alpha.numel() != 1:
        raise ValueError(f"alpha must be a scalar tensor, got shape {tuple(alpha.shape)}")
    if not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be an int >= 1, got {dilation!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}")
    check_same_device(input=input, guidance=guidance, weight=weight, alpha=alpha)


def resolve_impl(input: torch.Tensor, impl: str, chunk_rows: int | None = None) -> str:
    """The implementation ``impl="auto"`` stands for (others are returned unchanged).

    CUDA tensors of a Triton dtype use Triton. Otherwise the reference is used while one band
    of the chunked path would cover the whole map anyway (same arithmetic, no recompute in
    backward), and the chunked path beyond that, to bound memory.
    """
    check_impl(impl)
    if impl != "auto":
        return impl
    if triton_usable(input):
        return "triton"
    return "reference" if band_rows(input, chunk_rows) >= input.shape[2] else "chunked"


def depth_aware_conv2d(input: torch.Tensor, guidance: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None = None, *, alpha: torch.Tensor | float,
                       dilation: int = 1, kernel: str = "gaussian", impl: str = "auto",
                       chunk_rows: int | None = None) -> torch.Tensor:
    """Depth-aware 3x3 convolution (DACNN eq. 2), zero padding, same output size.

    Args:
        input: (B, C, H, W) features f.
        guidance: (B, G, H, W) depth guidance g at the same resolution, G >= 1.
        weight: (C', C, 3, 3) filter w; cast to ``input``'s dtype (as autocast would).
        bias: (C',) or None.
        alpha: scalar tensor (learnable) or float; K = exp(-alpha * dist). Keep it >= 0: a
            negative alpha makes K grow with the guidance distance.
        dilation: tap spacing d, pixels (DACNN uses 1, 6, 12, 18). May exceed H or W.
        kernel: "gaussian" (exp(-alpha ||dg||_2^2), METHODS §0 default) or "l1"
            (exp(-alpha ||dg||_1); with G = 1 this is exp(-alpha |dD|)).
        impl: "auto", "reference", "chunked" or "triton" (see :func:`resolve_impl`).
        chunk_rows: rows per band of the chunked path (default: fit DEFAULT_CHUNK_BYTES).

    Returns:
        (B, C', H, W) in ``input``'s dtype.
    """
    if not torch.is_tensor(alpha):
        alpha = torch.tensor(float(alpha), device=input.device)
    _check_args(input, guidance, weight, bias, alpha, dilation, kernel)
    impl = resolve_impl(input, impl, chunk_rows)
    # One compute dtype, as F.conv2d under autocast: parameters follow the activations.
    dtype = input.dtype
    guidance, weight = guidance.to(dtype), weight.to(dtype)
    bias = bias.to(dtype) if bias is not None else None
    alpha = alpha.reshape(())
    if impl == "reference":
        return depth_aware_conv2d_reference(input, guidance, weight, bias, alpha.to(dtype),
                                            dilation, kernel)
    if impl == "chunked":
        rows = band_rows(input, chunk_rows)
        return _ChunkedDepthAwareConv.apply(input, guidance, weight, bias, alpha.to(dtype),
                                            dilation, kernel, rows)
    module = load_triton_module("depth_aware_conv_triton", input, guidance, weight)
    return module.depth_aware_conv2d_triton(input.contiguous(), guidance.contiguous(),
                                            weight.contiguous(), bias, alpha, dilation, kernel)
