"""Triton kernels of the 1-D stereo correlation, forward and backward.

Import only through :func:`depth_kd_core.kernels._dispatch.load_triton_module` (``triton.jit``
reads ``TRITON_INTERPRET`` at definition time).

    forward  c_d(x)    = (1/C) sum_c l_c(x) r_c(x - d)          tiles: row pixels x disparities
    backward dl_c(x)   = (1/C) sum_d gc_d(x) r_c(x - d)          tiles: row pixels x channels
             dr_c(x')  = (1/C) sum_d gc_d(x' + d) l_c(x' + d)    (same program, gathered)
Both gradients are gathers (no atomics); nothing beyond the outputs is allocated.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from depth_kd_core.kernels._dispatch import interpreted

INTERPRETED = interpreted()  # fixed for this module's kernels when they were defined
BLOCK_X = 64  # pixels of one row per program
NUM_WARPS = 4


@triton.jit
def _corr_fwd_kernel(l_ptr, r_ptr, out_ptr, C, H, W, ND, D_MIN, inv_c,
                     BLOCK_X: tl.constexpr, BLOCK_D: tl.constexpr):
    row, pid_x, pid_d = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
    b, y = row // H, row % H
    x = pid_x * BLOCK_X + tl.arange(0, BLOCK_X)
    k = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)  # output channel, disparity D_MIN + k
    xr = x[:, None] - (D_MIN + k[None, :])
    ok = (x[:, None] < W) & (k[None, :] < ND) & (xr >= 0) & (xr < W)
    HW = H * W
    l_row = l_ptr + b * C * HW + y * W
    r_row = r_ptr + b * C * HW + y * W
    acc = tl.zeros((BLOCK_X, BLOCK_D), dtype=tl.float32)
    for c in range(0, C):
        lv = tl.load(l_row + c * HW + x, mask=x < W, other=0.0).to(tl.float32)
        rv = tl.load(r_row + c * HW + xr, mask=ok, other=0.0).to(tl.float32)
        acc += lv[:, None] * rv
    out = out_ptr + b * ND * HW + k[None, :] * HW + y * W + x[:, None]
    tl.store(out, (acc * inv_c).to(out_ptr.dtype.element_ty),
             mask=(x[:, None] < W) & (k[None, :] < ND))


@triton.jit
def _corr_bwd_kernel(l_ptr, r_ptr, gc_ptr, gl_ptr, gr_ptr, C, H, W, ND, D_MIN, inv_c,
                     NEED_L: tl.constexpr, NEED_R: tl.constexpr,
                     BLOCK_X: tl.constexpr, BLOCK_C: tl.constexpr):
    row, pid_x, pid_c = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
    b, y = row // H, row % H
    x = pid_x * BLOCK_X + tl.arange(0, BLOCK_X)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    HW = H * W
    feat = b * C * HW + c[None, :] * HW + y * W  # + column
    gc_row = gc_ptr + b * ND * HW + y * W
    acc_l = tl.zeros((BLOCK_X, BLOCK_C), dtype=tl.float32)
    acc_r = tl.zeros((BLOCK_X, BLOCK_C), dtype=tl.float32)
    for k in range(0, ND):
        d = D_MIN + k
        if NEED_L:  # left pixel x met right pixel x - d
            xr = x - d
            ok = (x < W) & (xr >= 0) & (xr < W)
            g = tl.load(gc_row + k * HW + x, mask=ok, other=0.0).to(tl.float32)
            rv = tl.load(r_ptr + feat + xr[:, None], mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc_l += g[:, None] * rv.to(tl.float32)
        if NEED_R:  # right pixel x met left pixel x + d
            xl = x + d
            ok = (x < W) & (xl >= 0) & (xl < W)
            g = tl.load(gc_row + k * HW + xl, mask=ok, other=0.0).to(tl.float32)
            lv = tl.load(l_ptr + feat + xl[:, None], mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc_r += g[:, None] * lv.to(tl.float32)
    mask = (x[:, None] < W) & c_ok[None, :]
    if NEED_L:
        tl.store(gl_ptr + feat + x[:, None], (acc_l * inv_c).to(gl_ptr.dtype.element_ty),
                 mask=mask)
    if NEED_R:
        tl.store(gr_ptr + feat + x[:, None], (acc_r * inv_c).to(gr_ptr.dtype.element_ty),
                 mask=mask)


class _TritonCorrelation(torch.autograd.Function):
    """Autograd wrapper; saves the two feature maps only."""

    @staticmethod
    def forward(ctx, left, right, d_min, nd):
        ctx.save_for_backward(left, right)
        ctx.conf = (d_min, nd)
        b, c, h, w = left.shape
        out = torch.empty(b, nd, h, w, device=left.device, dtype=left.dtype)
        block_d = max(16, min(32, triton.next_power_of_2(nd)))
        grid = (b * h, triton.cdiv(w, BLOCK_X), triton.cdiv(nd, block_d))
        _corr_fwd_kernel[grid](left, right, out, c, h, w, nd, d_min, 1.0 / c,
                               BLOCK_X=BLOCK_X, BLOCK_D=block_d, num_warps=NUM_WARPS)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        left, right = ctx.saved_tensors
        d_min, nd = ctx.conf
        need_l, need_r = ctx.needs_input_grad[:2]
        b, c, h, w = left.shape
        gl = torch.empty_like(left) if need_l else left  # dummy pointer when unused
        gr = torch.empty_like(right) if need_r else right
        block_c = max(16, min(32, triton.next_power_of_2(c)))
        grid = (b * h, triton.cdiv(w, BLOCK_X), triton.cdiv(c, block_c))
        _corr_bwd_kernel[grid](left, right, grad_out.contiguous(), gl, gr, c, h, w, nd, d_min,
                               1.0 / c, NEED_L=need_l, NEED_R=need_r, BLOCK_X=BLOCK_X,
                               BLOCK_C=block_c, num_warps=NUM_WARPS)
        return (gl if need_l else None), (gr if need_r else None), None, None


def correlation1d_triton(left: torch.Tensor, right: torch.Tensor, max_disp: int,
                         symmetric: bool) -> torch.Tensor:
    """Triton correlation; arguments as in ``correlation1d`` (contiguous, same dtype).

    Returns:
        (B, D + 1 or 2D + 1, H, W) in ``left``'s dtype; accumulation is float32.
    """
    d_min = -max_disp if symmetric else 0
    return _TritonCorrelation.apply(left, right, d_min, max_disp - d_min + 1)
