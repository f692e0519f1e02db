"""Stereo correlation c_d(x) = mean_c f_l(x) f_r(x - d).

The reference equals a naive loop, is gradchecked in float64, and the Triton kernel matches
it in values and both gradients.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from depth_kd_core.kernels import correlation1d

from conftest import requires_cuda

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton is not installed")
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu = interpreter

# (B, C, H, W, max_disp, symmetric): odd widths, batch > 1, C = 1, D >= W.
CASES = [
    (2, 3, 4, 9, 5, False),
    (2, 5, 3, 11, 4, True),
    (1, 1, 2, 7, 9, False),  # D > W: the far disparities see only zeros
    (2, 4, 3, 6, 7, True),
    (2, 2, 5, 13, 0, False),
]


def naive_correlation(left, right, max_disp, symmetric):
    """Direct transcription of the definition, one pixel at a time."""
    b, c, h, w = left.shape
    ds = list(range(-max_disp if symmetric else 0, max_disp + 1))
    out = torch.zeros(b, len(ds), h, w, dtype=left.dtype)
    for n in range(b):
        for k, d in enumerate(ds):
            for y in range(h):
                for x in range(w):
                    if 0 <= x - d < w:
                        out[n, k, y, x] = (left[n, :, y, x] * right[n, :, y, x - d]).sum() / c
    return out


def make_pair(b, c, h, w, dtype=torch.float64, device="cpu"):
    gen = torch.Generator().manual_seed(99)
    return [torch.randn(b, c, h, w, generator=gen, dtype=dtype).to(device).requires_grad_()
            for _ in range(2)]


@pytest.mark.parametrize("symmetric", [False, True])
def test_reference_equals_naive_loop(symmetric):
    left, right = make_pair(2, 3, 3, 8)
    out = correlation1d(left, right, 4, symmetric, impl="reference")
    assert out.shape == (2, 9 if symmetric else 5, 3, 8)
    expected = naive_correlation(left.detach(), right.detach(), 4, symmetric)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)


def test_disparity_of_a_shifted_copy_peaks_at_the_shift():
    """A right view = left shifted by 3 px correlates best at channel d = 3 (sign convention)."""
    left = torch.randn(1, 16, 2, 20, dtype=torch.float64)
    right = torch.zeros_like(left)
    right[..., :-3] = left[..., 3:]  # f_r(x - 3) = f_l(x)
    out = correlation1d(left, right, 6, impl="reference")
    assert (out[0, :, :, 6:].argmax(0) == 3).all()


@pytest.mark.parametrize("symmetric", [False, True])
def test_gradcheck_reference_float64(symmetric):
    left, right = make_pair(2, 2, 3, 6)
    assert torch.autograd.gradcheck(
        lambda a, b: correlation1d(a, b, 3, symmetric, impl="reference"), (left, right))


@needs_triton
@pytest.mark.parametrize("case", CASES)
def test_triton_matches_reference(case):
    *shape, max_disp, symmetric = case
    left, right = make_pair(*shape, dtype=torch.float32, device=TRITON_DEVICE)
    ref = correlation1d(left, right, max_disp, symmetric, impl="reference")
    tri = correlation1d(left, right, max_disp, symmetric, impl="triton")
    torch.testing.assert_close(tri, ref, atol=1e-5, rtol=1e-5)
    grad_out = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, (left, right), grad_out)
    grads_tri = torch.autograd.grad(tri, (left, right), grad_out)
    for name, gr, gt in zip(("left", "right"), grads_ref, grads_tri):
        torch.testing.assert_close(gt, gr, atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@needs_triton
@pytest.mark.parametrize("which", [0, 1])
def test_triton_gradient_to_one_side_only(which):
    tensors = make_pair(2, 3, 2, 9, dtype=torch.float32, device=TRITON_DEVICE)
    tensors[1 - which] = tensors[1 - which].detach()
    ref = correlation1d(*tensors, 4, True, impl="reference")
    tri = correlation1d(*tensors, 4, True, impl="triton")
    grad_out = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad(ref, tensors[which], grad_out)
    (g_tri,) = torch.autograd.grad(tri, tensors[which], grad_out)
    torch.testing.assert_close(g_tri, g_ref, atol=1e-5, rtol=1e-5)


def test_default_channels_and_auto_dispatch_on_cpu():
    left, right = make_pair(1, 4, 2, 30, dtype=torch.float32)
    out = correlation1d(left, right)  # METHODS §0 default: d = 0..24 at 1/8 scale
    assert out.shape == (1, 25, 2, 30)
    assert correlation1d(left, right, symmetric=True).shape == (1, 49, 2, 30)
    torch.testing.assert_close(out, correlation1d(left, right, 24, impl="reference"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(right=torch.zeros(1, 2, 3, 5)), "one shape"),
    (dict(max_disp=-1), "max_disp"),
    (dict(impl="chunked"), "impl must be one of"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = dict(left=torch.zeros(1, 2, 3, 4), right=torch.zeros(1, 2, 3, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        correlation1d(**args)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("symmetric", [False, True])
def test_cuda_triton_matches_reference_at_dacnn_size(symmetric):
    left, right = make_pair(2, 64, 44, 152, dtype=torch.float32, device="cuda")
    ref = correlation1d(left, right, 24, symmetric, impl="reference")
    tri = correlation1d(left, right, 24, symmetric)  # auto -> triton on CUDA
    torch.testing.assert_close(tri, ref, atol=1e-4, rtol=1e-4)
    grad_out = torch.randn_like(ref)
    for gr, gt in zip(torch.autograd.grad(ref, (left, right), grad_out),
                      torch.autograd.grad(tri, (left, right), grad_out)):
        torch.testing.assert_close(gt, gr, atol=1e-4, rtol=1e-4)
