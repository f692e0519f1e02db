"""Triton kernels of the depth-aware convolution (DACNN eq. 2), forward and backward.

Import this module only through :func:`depth_kd_core.kernels._dispatch.load_triton_module`:
``triton.jit`` reads ``TRITON_INTERPRET`` here, at definition time.

Notation (METHODS §4): p output pixel, o in P_d a tap, q = p + o the pixel it reads,
K(p, o) = exp(-alpha * dist(g(p), g(q))), gy = dL/df'. None of the kernels materialises an
unfold; K is recomputed from the guidance wherever it is needed.

    forward   f'(p)     = b + sum_o W(o) (K(p, o) f(p + o))            tiles: pixels x C_out
    grad_in   df(q)     = sum_o K(q - o, o) W(o)^T gy(q - o)            tiles: pixels x C_in
              T(p, o)   = K(p, o) sum_i f_i(q) [W(o)^T gy(p)]_i = dL/dK(p, o) * K(p, o)
                          (same kernel: it already holds W(o)^T gy(q - o) for its C_in tile;
                          partial sums per C_in tile go to a small buffer, summed in PyTorch)
    grad_w    dW(o)     = sum_{b,p} gy(p) (K(p, o) f(p + o))^T           split over pixels;
                          per-split partials summed in PyTorch (deterministic, no atomics)
    grad_g    dg(q)     = sum_o -alpha T(q, o) dphi(g(q) - g(q + o))      (q as centre)
                        + sum_o  alpha T(q - o, o) dphi(g(q - o) - g(q))  (q as neighbour)
    grad_alpha          = -sum_{p,o} T(p, o) dist(p, o)
with dphi(x) = 2x ("gaussian") or sign(x) ("l1"). Extra memory: T is 9 * n_tiles(C_in) values
per pixel, the grad_w partials n_split * C' * C * 9 values: both far below the 9*C*H*W unfold.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from depth_kd_core.kernels._dispatch import interpreted

INTERPRETED = interpreted()  # fixed for this module's kernels when they were defined
KERNEL_IDS = {"gaussian": 0, "l1": 1}
BLOCK_P = 64  # output pixels per program (flattened H*W)
NUM_WARPS = 4
TARGET_PROGRAMS = 512  # grad_w: split the pixel reduction until about this many programs run


def _block(n: int, cap: int) -> int:
    """Channel tile: a power of two in [16, cap] (tl.dot needs every dimension >= 16)."""
    return max(16, min(cap, triton.next_power_of_2(n)))


def _precision(dtype: torch.dtype) -> str:
    """tl.dot input precision: full float32 unless PyTorch's own matmuls may use TF32.

    "tf32" is also Triton's default, passed for float16/bfloat16 where it has no effect.
    """
    use_ieee = dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32
    return "ieee" if use_ieee else "tf32"


@triton.jit
def _tap(h, w, k: tl.constexpr, SIGN: tl.constexpr, DIL, H, W, ok):
    """Pixel p + SIGN * o_k as (flat index, in-image mask); o_k = ((k//3-1)d, (k%3-1)d)."""
    nh = h + SIGN * (k // 3 - 1) * DIL
    nw = w + SIGN * (k % 3 - 1) * DIL
    valid = ok & (nh >= 0) & (nh < H) & (nw >= 0) & (nw < W)
    return nh * W + nw, valid


@triton.jit
def _dist(g_b, G, HW, pa, pb, valid, KTYPE: tl.constexpr):
    """||g(pa) - g(pb)||^2 (KTYPE 0) or ||.||_1 (KTYPE 1) over the G guidance channels."""
    dist = tl.zeros(pa.shape, dtype=tl.float32)
    for c in range(0, G):
        ga = tl.load(g_b + c * HW + pa, mask=valid, other=0.0).to(tl.float32)
        gb = tl.load(g_b + c * HW + pb, mask=valid, other=0.0).to(tl.float32)
        diff = ga - gb
        if KTYPE == 0:
            dist += diff * diff
        else:
            dist += tl.abs(diff)
    return dist


@triton.jit
def _fwd_kernel(x_ptr, g_ptr, w_ptr, b_ptr, alpha_ptr, out_ptr, C, CO, G, H, W, DIL,
                HAS_BIAS: tl.constexpr, KTYPE: tl.constexpr, PREC: tl.constexpr,
                BLOCK_P: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_CO: tl.constexpr):
    pid_p, pid_co, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    HW = H * W
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < HW
    h, w = p // W, p % W
    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    co_ok = co < CO
    x_b, g_b = x_ptr + b * C * HW, g_ptr + b * G * HW
    alpha = tl.load(alpha_ptr).to(tl.float32)
    acc = tl.zeros((BLOCK_P, BLOCK_CO), dtype=tl.float32)
    for k in tl.static_range(9):
        q, ok = _tap(h, w, k, 1, DIL, H, W, p_ok)
        kw = tl.exp(-alpha * _dist(g_b, G, HW, p, q, ok, KTYPE))
        for c0 in range(0, C, BLOCK_CI):
            ci = c0 + tl.arange(0, BLOCK_CI)
            ci_ok = ci < C
            xv = tl.load(x_b + ci[None, :] * HW + q[:, None], mask=ok[:, None] & ci_ok[None, :],
                         other=0.0)
            wv = tl.load(w_ptr + co[None, :] * (C * 9) + ci[:, None] * 9 + k,
                         mask=ci_ok[:, None] & co_ok[None, :], other=0.0)
            a = (xv.to(tl.float32) * kw[:, None]).to(wv.dtype)
            acc = tl.dot(a, wv, acc, input_precision=PREC)
    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + b * CO * HW + co[None, :] * HW + p[:, None]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=p_ok[:, None] & co_ok[None, :])


@triton.jit
def _grad_input_kernel(x_ptr, g_ptr, w_ptr, alpha_ptr, gy_ptr, gx_ptr, t_ptr, B, C, CO, G, H, W,
                       DIL, NEED_GX: tl.constexpr, NEED_T: tl.constexpr, KTYPE: tl.constexpr,
                       PREC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_CI: tl.constexpr,
                       BLOCK_CO: tl.constexpr):
    pid_q, pid_ci, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    HW = H * W
    q = pid_q * BLOCK_P + tl.arange(0, BLOCK_P)  # input pixels
    q_ok = q < HW
    h, w = q // W, q % W
    ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    ci_ok = ci < C
    g_b, gy_b = g_ptr + b * G * HW, gy_ptr + b * CO * HW
    alpha = tl.load(alpha_ptr).to(tl.float32)
    xq = tl.load(x_ptr + b * C * HW + ci[None, :] * HW + q[:, None],
                 mask=q_ok[:, None] & ci_ok[None, :], other=0.0).to(tl.float32)
    gx = tl.zeros((BLOCK_P, BLOCK_CI), dtype=tl.float32)
    for k in tl.static_range(9):
        # The output pixel p = q - o read q through tap o; K is evaluated at p (centre).
        pp, ok = _tap(h, w, k, -1, DIL, H, W, q_ok)
        kw = tl.exp(-alpha * _dist(g_b, G, HW, pp, q, ok, KTYPE))
        u = tl.zeros((BLOCK_P, BLOCK_CI), dtype=tl.float32)  # [W(o)^T gy(p)]_i
        for j0 in range(0, CO, BLOCK_CO):
            co = j0 + tl.arange(0, BLOCK_CO)
            co_ok = co < CO
            gyv = tl.load(gy_b + co[None, :] * HW + pp[:, None],
                          mask=ok[:, None] & co_ok[None, :], other=0.0)
            wv = tl.load(w_ptr + co[:, None] * (C * 9) + ci[None, :] * 9 + k,
                         mask=co_ok[:, None] & ci_ok[None, :], other=0.0)
            u = tl.dot(gyv.to(wv.dtype), wv, u, input_precision=PREC)
        gx += u * kw[:, None]
        if NEED_T:
            # T(p, o) partial over this C_in tile, stored at the pixel q = p + o it reads.
            t = tl.sum(u * xq, axis=1) * kw
            tl.store(t_ptr + ((pid_ci * B + b) * 9 + k) * HW + q, t, mask=q_ok)
    if NEED_GX:
        out = gx_ptr + b * C * HW + ci[None, :] * HW + q[:, None]
        tl.store(out, gx.to(gx_ptr.dtype.element_ty), mask=q_ok[:, None] & ci_ok[None, :])


@triton.jit
def _grad_weight_kernel(x_ptr, g_ptr, alpha_ptr, gy_ptr, part_ptr, B, C, CO, G, H, W, DIL,
                        N_CI, N_CO, KTYPE: tl.constexpr, PREC: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_CO: tl.constexpr):
    pid, split, n_split = tl.program_id(0), tl.program_id(1), tl.num_programs(1)
    k = pid % 9  # the tap is a runtime value here: one program per (tap, C_out, C_in) tile
    pid_co = (pid // 9) % N_CO
    pid_ci = pid // (9 * N_CO)
    HW = H * W
    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    co_ok, ci_ok = co < CO, ci < C
    dy, dx = (k // 3 - 1) * DIL, (k % 3 - 1) * DIL
    alpha = tl.load(alpha_ptr).to(tl.float32)
    n_pb = tl.cdiv(HW, BLOCK_P)
    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
    for blk in range(split, B * n_pb, n_split):
        b = (blk // n_pb).to(tl.int64)
        p = (blk % n_pb) * BLOCK_P + tl.arange(0, BLOCK_P)
        p_ok = p < HW
        nh, nw = p // W + dy, p % W + dx
        ok = p_ok & (nh >= 0) & (nh < H) & (nw >= 0) & (nw < W)
        q = nh * W + nw
        kw = tl.exp(-alpha * _dist(g_ptr + b * G * HW, G, HW, p, q, ok, KTYPE))
        gyv = tl.load(gy_ptr + b * CO * HW + co[:, None] * HW + p[None, :],
                      mask=co_ok[:, None] & p_ok[None, :], other=0.0)
        xv = tl.load(x_ptr + b * C * HW + ci[None, :] * HW + q[:, None],
                     mask=ok[:, None] & ci_ok[None, :], other=0.0)
        a = (xv.to(tl.float32) * kw[:, None]).to(gyv.dtype)
        acc = tl.dot(gyv, a, acc, input_precision=PREC)
    out = part_ptr + split * CO * C * 9 + co[:, None] * (C * 9) + ci[None, :] * 9 + k
    tl.store(out, acc, mask=co_ok[:, None] & ci_ok[None, :])


@triton.jit
def _dphi(diff, KTYPE: tl.constexpr):
    """Return d dist / d g(p) per channel for diff = g(p) - g(p + o)."""
    if KTYPE == 0:
        return 2.0 * diff
    else:
        return tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))


@triton.jit
def _grad_guidance_kernel(g_ptr, t_ptr, alpha_ptr, gg_ptr, ga_ptr, G, H, W, DIL,
                          NEED_GG: tl.constexpr, KTYPE: tl.constexpr, BLOCK_P: tl.constexpr):
    pid_q, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    HW = H * W
    q = pid_q * BLOCK_P + tl.arange(0, BLOCK_P)
    q_ok = q < HW
    h, w = q // W, q % W
    g_b, t_b = g_ptr + b * G * HW, t_ptr + b * 9 * HW
    alpha = tl.load(alpha_ptr).to(tl.float32)
    # d alpha: every (p, o) pair counted once, with q as the centre p.
    ga = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for k in tl.static_range(9):
        n, ok = _tap(h, w, k, 1, DIL, H, W, q_ok)
        t_c = tl.load(t_b + k * HW + n, mask=ok, other=0.0)  # T(q, o) lives at q + o
        ga -= t_c * _dist(g_b, G, HW, q, n, ok, KTYPE)
    tl.store(ga_ptr + b * tl.num_programs(0) + pid_q, tl.sum(ga, axis=0))
    if NEED_GG:
        for c in range(0, G):
            gq = tl.load(g_b + c * HW + q, mask=q_ok, other=0.0).to(tl.float32)
            acc = tl.zeros((BLOCK_P,), dtype=tl.float32)
            for k in tl.static_range(9):
                n, ok_c = _tap(h, w, k, 1, DIL, H, W, q_ok)  # q as centre, neighbour n
                t_c = tl.load(t_b + k * HW + n, mask=ok_c, other=0.0)
                gn = tl.load(g_b + c * HW + n, mask=ok_c, other=0.0).to(tl.float32)
                acc -= alpha * t_c * _dphi(gq - gn, KTYPE)
                pp, ok_n = _tap(h, w, k, -1, DIL, H, W, q_ok)  # q as neighbour of pp
                t_n = tl.load(t_b + k * HW + q, mask=ok_n, other=0.0)
                gp = tl.load(g_b + c * HW + pp, mask=ok_n, other=0.0).to(tl.float32)
                acc += alpha * t_n * _dphi(gp - gq, KTYPE)
            tl.store(gg_ptr + b * G * HW + c * HW + q, acc.to(gg_ptr.dtype.element_ty),
                     mask=q_ok)


def _forward(x, g, weight, bias, alpha, d, ktype):
    b, c, h, w = x.shape
    co = weight.shape[0]
    out = torch.empty(b, co, h, w, device=x.device, dtype=x.dtype)
    bci, bco = _block(c, 32), _block(co, 64)
    grid = (triton.cdiv(h * w, BLOCK_P), triton.cdiv(co, bco), b)
    _fwd_kernel[grid](x, g, weight, bias if bias is not None else weight, alpha, out, c, co,
                      g.shape[1], h, w, d, HAS_BIAS=bias is not None, KTYPE=ktype,
                      PREC=_precision(x.dtype), BLOCK_P=BLOCK_P, BLOCK_CI=bci, BLOCK_CO=bco,
                      num_warps=NUM_WARPS)
    return out


def _grad_input_and_t(x, g, weight, alpha, gy, d, ktype, need_gx, need_t):
    """dL/df (or None) and T(p, o) summed over C_in tiles, (B, 9, H*W) float32 (or None)."""
    b, c, h, w = x.shape
    co = weight.shape[0]
    bci, bco = _block(c, 64), _block(co, 32)
    n_ci = triton.cdiv(c, bci)
    gx = torch.empty_like(x) if need_gx else x  # x: a dummy pointer, never written
    t = torch.empty(n_ci, b, 9, h * w, device=x.device, dtype=torch.float32) if need_t else x
    grid = (triton.cdiv(h * w, BLOCK_P), n_ci, b)
    _grad_input_kernel[grid](x, g, weight, alpha, gy, gx, t, b, c, co, g.shape[1], h, w, d,
                             NEED_GX=need_gx, NEED_T=need_t, KTYPE=ktype,
                             PREC=_precision(x.dtype), BLOCK_P=BLOCK_P, BLOCK_CI=bci,
                             BLOCK_CO=bco, num_warps=NUM_WARPS)
    return (gx if need_gx else None), (t.sum(0) if need_t else None)


def _grad_weight(x, g, weight, alpha, gy, d, ktype):
    b, c, h, w = x.shape
    co = weight.shape[0]
    bci, bco = _block(c, 64), _block(co, 64)
    n_ci, n_co = triton.cdiv(c, bci), triton.cdiv(co, bco)
    tiles = 9 * n_ci * n_co
    n_blocks = b * triton.cdiv(h * w, BLOCK_P)
    n_split = max(1, min(n_blocks, triton.cdiv(TARGET_PROGRAMS, tiles)))
    part = torch.empty(n_split, co, c, 3, 3, device=x.device, dtype=torch.float32)
    _grad_weight_kernel[(tiles, n_split)](x, g, alpha, gy, part, b, c, co, g.shape[1], h, w, d,
                                          n_ci, n_co, KTYPE=ktype, PREC=_precision(x.dtype),
                                          BLOCK_P=BLOCK_P, BLOCK_CI=bci, BLOCK_CO=bco,
                                          num_warps=NUM_WARPS)
    return part.sum(0).to(weight.dtype)


def _grad_guidance_alpha(g, t, alpha, d, ktype, need_gg):
    b, gc, h, w = g.shape
    n_q = triton.cdiv(h * w, BLOCK_P)
    gg = torch.empty_like(g) if need_gg else g
    ga = torch.empty(b, n_q, device=g.device, dtype=torch.float32)
    _grad_guidance_kernel[(n_q, b)](g, t, alpha, gg, ga, gc, h, w, d, NEED_GG=need_gg,
                                    KTYPE=ktype, BLOCK_P=BLOCK_P, num_warps=NUM_WARPS)
    return (gg if need_gg else None), ga.sum().to(alpha.dtype).reshape(alpha.shape)


class _TritonDepthAwareConv(torch.autograd.Function):
    """Autograd wrapper: saves only the inputs; every backward term is recomputed by kernels."""

    @staticmethod
    def forward(ctx, x, g, weight, bias, alpha, d, ktype):
        ctx.save_for_backward(x, g, weight, alpha)
        ctx.conf = (d, ktype)
        return _forward(x, g, weight, bias, alpha, d, ktype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        x, g, weight, alpha = ctx.saved_tensors
        d, ktype = ctx.conf
        need_x, need_g, need_w, need_b, need_a = ctx.needs_input_grad[:5]
        gy = gy.contiguous()
        gx = gg = gw = gb = ga = None
        if need_x or need_g or need_a:
            gx, t = _grad_input_and_t(x, g, weight, alpha, gy, d, ktype, need_x,
                                      need_g or need_a)
            if need_g or need_a:
                gg, ga = _grad_guidance_alpha(g, t, alpha, d, ktype, need_g)
        if need_w:
            gw = _grad_weight(x, g, weight, alpha, gy, d, ktype)
        if need_b:
            gb = gy.sum((0, 2, 3))
        return gx, gg, gw, gb, (ga if need_a else None), None, None


def depth_aware_conv2d_triton(x: torch.Tensor, guidance: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor | None, alpha: torch.Tensor, dilation: int,
                              kernel: str) -> torch.Tensor:
    """Triton depth-aware convolution; arguments as in ``depth_aware_conv2d`` (contiguous).

    Returns:
        (B, C', H, W) in ``x``'s dtype; accumulation is float32.
    """
    alpha = alpha.reshape(1).to(torch.float32)
    return _TritonDepthAwareConv.apply(x, guidance, weight, bias, alpha, dilation,
                                       KERNEL_IDS[kernel])
