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
    taps: the 3x3 filter split into its 9 taps: one 1x1 convolution gives every tap's
        sum_i w_ij(o) f_i at every pixel (9*C' channels); each tap's map is shifted by o,
        weighted by K and summed. Exact; its elementwise work and saved memory scale with C'
        instead of C and no C-channel unfold exists (the CPU default when C' <= C).
    chunked: the same arithmetic on bands of output rows inside a custom autograd Function that
        keeps only its inputs; its hand-written backward recomputes each band's unfold, so at
        most one band's 9*C*rows*W unfold is alive at a time (CPU path for large maps).
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
# Bytes one band of the chunked path may unfold at once. On the benchmark CPU smaller bands
# cost time (per-band overhead, recompute), larger ones memory; 64 MiB kept forward + backward
# within ~1.2x of the reference's time at under half its peak (benchmarks/RESULTS.md).
DEFAULT_CHUNK_BYTES = 64 * 2**20


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


def depth_aware_conv2d_taps(input: torch.Tensor, guidance: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None, alpha: torch.Tensor, dilation: int = 1,
                            kernel: str = "gaussian") -> torch.Tensor:
    """Depth-aware convolution computed tap by tap (plain autograd; see the module docstring).

    Same arguments and result as :func:`depth_aware_conv2d_reference`.
    """
    b, c, h, w = input.shape
    co, d = weight.shape[0], dilation
    # (C', C, 3, 3) -> (9 C', C, 1, 1), tap-major in F.unfold's (ky, kx) order; split per tap
    # so each tap's slice backward zero-fills C' channels, not all 9 C'
    per_tap = F.conv2d(input, weight.permute(2, 3, 0, 1).reshape(TAPS * co, c, 1, 1))
    per_tap = per_tap.unflatten(1, (TAPS, co)).unbind(1)
    g_cols = F.unfold(guidance, kernel_size=3, dilation=d, padding=d).view(b, -1, TAPS, h, w)
    k = kernel_weights(guidance.unsqueeze(2), g_cols, alpha, kernel)
    centre = TAPS // 2  # offset (0, 0): covers every pixel
    out = per_tap[centre] * k[:, centre:centre + 1]
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    for t in range(TAPS):
        oy, ox = (t // 3 - 1) * d, (t % 3 - 1) * d
        ya, yb, xa, xb = max(0, -oy), min(h, h - oy), max(0, -ox), min(w, w - ox)
        if t == centre or ya >= yb or xa >= xb:
            continue  # the centre is in already; this tap lies outside the image everywhere
        src = per_tap[t][:, :, ya + oy:yb + oy, xa + ox:xb + ox]
        out[:, :, ya:yb, xa:xb] += src * k[:, t:t + 1, ya:yb, xa:xb]
    return out


def _slab_cols(slab: torch.Tensor, d: int) -> torch.Tensor:
    """Unfold of the middle rows of a slab.

    Args:
        slab: (B, C, R + 2d, W) image rows [r0 - d, r1 + d), zero rows outside the image.
        d: dilation, pixels.

    Returns:
        (B, C, 9, R, W) values at p + o for the R output rows [r0, r1); unfold's own width
        padding supplies the zeros left and right of the image.
    """
    b, c, n, w = slab.shape
    cols = F.unfold(slab, kernel_size=3, dilation=d, padding=(0, d))
    return cols.view(b, c, TAPS, n - 2 * d, w)


def _slab_forward(x_slab: torch.Tensor, g_slab: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None, alpha: torch.Tensor, d: int,
                  kernel: str) -> torch.Tensor:
    """Compute the reference arithmetic for one band of output rows, from its input slabs.

    Args:
        x_slab: (B, C, R + 2d, W) input rows [r0 - d, r1 + d) (see _slab_cols).
        g_slab: (B, G, R + 2d, W) guidance rows, same range.

    Returns:
        (B, C', R, W) output rows [r0, r1).
    """
    rows = x_slab.shape[2] - 2 * d
    g_centre = g_slab[:, :, d:d + rows].unsqueeze(2)
    k = kernel_weights(g_centre, _slab_cols(g_slab, d), alpha, kernel)
    return _combine(_slab_cols(x_slab, d), k, weight, bias)


def band_rows(input: torch.Tensor, chunk_rows: int | None) -> int:
    """Rows per band: ``chunk_rows`` or as many as fit :data:`DEFAULT_CHUNK_BYTES` (>= 1)."""
    if chunk_rows is not None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        return chunk_rows
    b, c, _, w = input.shape
    row_bytes = b * c * TAPS * w * input.element_size()
    return max(1, DEFAULT_CHUNK_BYTES // max(1, row_bytes))


def _bands(h: int, rows: int):
    """(r0, r1) of each band of at most ``rows`` output rows."""
    return [(r0, min(h, r0 + rows)) for r0 in range(0, h, rows)]


class _ChunkedDepthAwareConv(torch.autograd.Function):
    """Band-by-band forward; backward recomputes each band's unfold (checkpointing per band).

    Input and guidance are zero-padded by d rows top and bottom once (C*(H + 2d)*W values, not
    9*C*H*W), so every band reads a view. Only the inputs are saved: forward and backward each
    hold one band's unfold (9*C*rows*W values) and a few band-sized temporaries at a time.
    """

    @staticmethod
    def forward(ctx, x, g, weight, bias, alpha, d, kernel, rows):
        ctx.save_for_backward(x, g, weight, alpha)
        ctx.conf = (bias is not None, d, kernel, rows)
        xp, gp = F.pad(x, (0, 0, d, d)), F.pad(g, (0, 0, d, d))
        out = x.new_empty(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])
        for r0, r1 in _bands(x.shape[2], rows):
            band = slice(r0, r1 + 2 * d)  # padded rows = image rows [r0 - d, r1 + d)
            out[:, :, r0:r1] = _slab_forward(xp[:, :, band], gp[:, :, band], weight, bias,
                                             alpha, d, kernel)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, g, weight, alpha = ctx.saved_tensors
        has_bias, d, kernel, rows = ctx.conf
        need = ctx.needs_input_grad
        sources = {0: x, 1: g, 2: weight, 4: alpha}
        grads = {i: torch.zeros_like(t) for i, t in sources.items() if need[i]}
        if grads:
            xp, gp = F.pad(x, (0, 0, d, d)), F.pad(g, (0, 0, d, d))
            for r0, r1 in _bands(x.shape[2], rows):
                _accumulate_band_grads(grads, xp, gp, weight, alpha, d, kernel, r0, r1,
                                       grad_out[:, :, r0:r1])
        bias_grad = grad_out.sum((0, 2, 3)) if has_bias and need[3] else None
        return (grads.get(0), grads.get(1), grads.get(2), bias_grad, grads.get(4),
                None, None, None)


def _accumulate_band_grads(grads: dict, xp, gp, weight, alpha, d, kernel, r0, r1,
                           grad_band) -> None:
    """Add band [r0, r1)'s gradients into ``grads``, recomputing its unfold.

    The hand-written chain rule of eq. 2 (cheaper than re-running the forward under autograd:
    the band's output matmul is never recomputed). With colsK = unfold(f) * K:
        dW = gy colsK^T,   dcolsK = W^T gy,   df = unfold^T(dcolsK * K),
        dL/dK(p, o) = sum_i dcolsK_i(p, o) f_i(p + o), chained to g and alpha by autograd
        through the small (B, 9, R, W) kernel-weight computation.

    Args:
        grads: full-size accumulators keyed by argument index (0 input, 1 guidance,
            2 weight, 4 alpha); only the keys present are computed.
        xp, gp: input and guidance zero-padded by d rows top and bottom.
        grad_band: (B, C', R, W) dL/d output rows [r0, r1).
    """
    band = slice(r0, r1 + 2 * d)
    x_slab = xp[:, :, band]
    b, c, n, w = x_slab.shape
    co, rows = weight.shape[0], n - 2 * d
    cols = _slab_cols(x_slab, d)  # (B, C, 9, R, W)
    with torch.enable_grad():
        g_slab = gp[:, :, band].detach().requires_grad_(1 in grads)
        a_leaf = alpha.detach().requires_grad_(4 in grads)
        k = kernel_weights(g_slab[:, :, d:d + rows].unsqueeze(2), _slab_cols(g_slab, d), a_leaf,
                           kernel)
    k_taps = k.detach().unsqueeze(1)  # (B, 1, 9, R, W)
    gy = grad_band.reshape(b, co, rows * w)
    if 2 in grads:
        cols_k = (cols * k_taps).reshape(b, c * TAPS, rows * w)
        grads[2] += torch.matmul(gy, cols_k.transpose(1, 2)).sum(0).view_as(weight)
        del cols_k
    k_keys = [i for i in (1, 4) if i in grads]
    if not k_keys and 0 not in grads:
        return
    grad_cols = torch.matmul(weight.reshape(co, c * TAPS).t(), gy).view(b, c, TAPS, rows, w)
    if k_keys:
        dl_dk = (grad_cols * cols).sum(1)  # (B, 9, R, W)
        with torch.enable_grad():
            leaves = {1: g_slab, 4: a_leaf}
            k_grads = torch.autograd.grad(k, [leaves[i] for i in k_keys], dl_dk)
        for i, grad in zip(k_keys, k_grads):
            _add_band(grads, i, grad, r0, r1, d)
    if 0 in grads:
        _add_taps(grads[0], grad_cols.mul_(k_taps), r0, d)


def _add_taps(acc: torch.Tensor, grad_cols: torch.Tensor, r0: int, d: int) -> None:
    """Scatter per-tap gradients back to the pixels p + o they were read from (unfold^T).

    Nine strided in-place adds instead of F.fold, which would allocate a zeroed slab of
    R + 2d rows per band (mostly padding when R is small and d large). Taps outside the
    image are dropped, as their inputs were zeros.

    Args:
        acc: (B, C, H, W) accumulator of dL/df.
        grad_cols: (B, C, 9, R, W) dL/d f(p + o) for output rows [r0, r0 + R).
        r0: first output row of the band.
        d: dilation, pixels.
    """
    h, w = acc.shape[2], acc.shape[3]
    rows = grad_cols.shape[3]
    for k in range(TAPS):
        dy, dx = (k // 3 - 1) * d, (k % 3 - 1) * d
        y0, y1 = max(r0, -dy), min(r0 + rows, h - dy)  # output rows whose tap is inside
        x0, x1 = max(0, -dx), min(w, w - dx)
        if y0 < y1 and x0 < x1:
            acc[:, :, y0 + dy:y1 + dy, x0 + dx:x1 + dx] += grad_cols[:, :, k, y0 - r0:y1 - r0,
                                                                     x0:x1]


def _add_band(grads: dict, i: int, grad: torch.Tensor, r0: int, r1: int, d: int) -> None:
    """Add a guidance-slab gradient (rows [r0 - d, r1 + d)) or alpha's gradient to grads[i]."""
    if i == 4:
        grads[i] += grad
        return
    h = grads[i].shape[2]
    lo, hi = max(0, r0 - d), min(h, r1 + d)  # the slab's rows that lie inside the image
    grads[i][:, :, lo:hi] += grad[:, :, lo - (r0 - d):hi - (r0 - d)]


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


def resolve_impl(input: torch.Tensor, impl: str, chunk_rows: int | None = None,
                 out_channels: int | None = None) -> str:
    """Return the implementation ``impl="auto"`` stands for (others are returned unchanged).

    CUDA tensors of a Triton dtype use Triton. On CPU the taps path when the layer does not
    widen (C' <= C): its work and memory scale with C' (benchmarks/RESULTS.md). Otherwise the
    reference while one band of the chunked path would cover the whole map anyway (its unfold
    fits DEFAULT_CHUNK_BYTES): it is then faster, having no recompute in backward. Beyond that
    the chunked path, whose memory stays bounded by the band budget.
    """
    check_impl(impl)
    if impl != "auto":
        return impl
    if triton_usable(input):
        return "triton"
    if out_channels is not None and out_channels <= input.shape[1]:
        return "taps"
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
        impl: "auto", "reference", "taps", "chunked" or "triton" (see :func:`resolve_impl`).
        chunk_rows: rows per band of the chunked path (default: fit DEFAULT_CHUNK_BYTES).

    Returns:
        (B, C', H, W) in ``input``'s dtype.
    """
    if not torch.is_tensor(alpha):
        alpha = torch.tensor(float(alpha), device=input.device)
    _check_args(input, guidance, weight, bias, alpha, dilation, kernel)
    impl = resolve_impl(input, impl, chunk_rows, weight.shape[0])
    # One compute dtype, as F.conv2d under autocast: parameters follow the activations.
    dtype = input.dtype
    guidance, weight = guidance.to(dtype), weight.to(dtype)
    bias = bias.to(dtype) if bias is not None else None
    alpha = alpha.reshape(())
    if impl == "reference":
        return depth_aware_conv2d_reference(input, guidance, weight, bias, alpha.to(dtype),
                                            dilation, kernel)
    if impl == "taps":
        return depth_aware_conv2d_taps(input, guidance, weight, bias, alpha.to(dtype), dilation,
                                       kernel)
    if impl == "chunked":
        rows = band_rows(input, chunk_rows)
        return _ChunkedDepthAwareConv.apply(input, guidance, weight, bias, alpha.to(dtype),
                                            dilation, kernel, rows)
    module = load_triton_module("depth_aware_conv_triton", input, guidance, weight)
    return module.depth_aware_conv2d_triton(input.contiguous(), guidance.contiguous(),
                                            weight.contiguous(), bias, alpha, dilation, kernel)
