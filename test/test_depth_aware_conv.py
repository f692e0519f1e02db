"""Depth-aware convolution (DACNN eq. 2).

Reference, chunked and Triton agree in values and in every gradient; alpha = 0 is a plain
convolution; the chunked path never unfolds the whole map.

Triton kernels run on the GPU when there is one, else in Triton's CPU interpreter
(TRITON_INTERPRET=1, set by conftest.py).
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import torch.nn.functional as F

from depth_kd_core.kernels import depth_aware_conv as dac
from depth_kd_core.kernels import depth_aware_conv2d

from conftest import requires_cuda

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton is not installed")
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu = interpreter
ARGS = ("input", "guidance", "weight", "bias", "alpha")

# (B, C, C', G, H, W, dilation, kernel): odd sizes, batch > 1, G = 1 and G > 1, dilations
# inside the image, beyond one side only, and beyond both sides.
# The Triton path under the CPU interpreter takes ~1 s a call: outside the parity cases below it
# runs in the full suite only (-m "not slow" leaves it out)
TRITON_SLOW = pytest.param("triton", marks=[needs_triton, pytest.mark.slow])

CASES = [
    (2, 3, 4, 1, 7, 9, 1, "gaussian"),
    (2, 5, 3, 3, 9, 7, 2, "l1"),
    (2, 4, 5, 2, 8, 13, 9, "gaussian"),  # d > H, d < W
    (1, 3, 2, 1, 7, 7, 12, "l1"),  # every off-centre tap outside the image
    (2, 2, 3, 4, 11, 10, 3, "l1"),
    (2, 5, 2, 1, 10, 11, 6, "gaussian"),
]


def make_inputs(b, c, co, g, h, w, dtype=torch.float64, device="cpu", alpha=0.7):
    """Random leaf tensors; guidance scaled so K spans (0, 1) rather than saturating."""
    gen = torch.Generator().manual_seed(1234)
    tensors = [torch.randn(b, c, h, w, generator=gen, dtype=dtype),
               0.5 * torch.randn(b, g, h, w, generator=gen, dtype=dtype),
               torch.randn(co, c, 3, 3, generator=gen, dtype=dtype) / 3,
               torch.randn(co, generator=gen, dtype=dtype),
               torch.tensor(alpha, dtype=dtype)]
    return [t.to(device).requires_grad_() for t in tensors]


def run(tensors, impl, dilation, kernel, grad_out=None, **kw):
    """Output and the gradients of sum(out * grad_out) w.r.t. the tensors that require grad."""
    x, g, w, b, a = tensors
    out = depth_aware_conv2d(x, g, w, b, alpha=a, dilation=dilation, kernel=kernel, impl=impl,
                             **kw)
    grad_out = torch.randn_like(out) if grad_out is None else grad_out
    wanted = [t for t in tensors if t.requires_grad]
    return out, torch.autograd.grad(out, wanted, grad_out), grad_out


def assert_close_all(ref, other, atol, rtol, names=ARGS):
    (out_r, grads_r, _), (out_o, grads_o, _) = ref, other
    torch.testing.assert_close(out_o.cpu(), out_r.cpu(), atol=atol, rtol=rtol, msg="output")
    for name, gr, go in zip(names, grads_r, grads_o):
        torch.testing.assert_close(go.cpu(), gr.cpu(), atol=atol, rtol=rtol,
                                   msg=lambda m, n=name: f"grad of {n}: {m}")


@pytest.fixture
def no_tf32():
    """Full-precision float32 matmuls and convolutions in references and kernels (GPU runs)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    old = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    yield
    matmul.allow_tf32, cudnn.allow_tf32 = old


@pytest.mark.parametrize("kernel", ["gaussian", "l1"])
def test_gradcheck_reference_float64(kernel):
    tensors = make_inputs(2, 2, 3, 2, 5, 6)

    def f(x, g, w, b, a):
        return depth_aware_conv2d(x, g, w, b, alpha=a, dilation=2, kernel=kernel,
                                  impl="reference")

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-5)


def test_gradcheck_chunked_float64():
    """The chunked path's hand-written backward, checked directly (fast mode keeps it short)."""
    tensors = make_inputs(1, 2, 2, 2, 5, 4)

    def f(x, g, w, b, a):
        return depth_aware_conv2d(x, g, w, b, alpha=a, dilation=1, impl="chunked",
                                  chunk_rows=2)

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("impl", ["reference", "taps", "chunked", TRITON_SLOW])
@pytest.mark.parametrize("dilation", [1, 2, 7])
def test_alpha_zero_is_conv2d(impl, dilation, no_tf32):
    dtype = torch.float32 if impl == "triton" else torch.float64
    device = TRITON_DEVICE if impl == "triton" else "cpu"
    x, g, w, b, _ = make_inputs(2, 3, 4, 2, 9, 8, dtype=dtype, device=device)
    out = depth_aware_conv2d(x, g, w, b, alpha=0.0, dilation=dilation, impl=impl, chunk_rows=3)
    expected = F.conv2d(x, w, b, padding=dilation, dilation=dilation)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)


def test_alpha_changes_the_output():
    """Guards the tests above: with alpha > 0 the op must differ from a plain convolution."""
    x, g, w, b, a = make_inputs(2, 3, 4, 2, 9, 8)
    out = depth_aware_conv2d(x, g, w, b, alpha=a, dilation=1, impl="reference")
    assert (out - F.conv2d(x, w, b, padding=1)).abs().max() > 1e-2


def test_reference_matches_eq2_loop():
    """The unfold reference against a direct loop over eq. 2 on a 4x5 map (zero padding)."""
    x, g, w, b, a = [t.detach() for t in make_inputs(1, 2, 2, 2, 4, 5)]
    d = 2
    out = depth_aware_conv2d(x, g, w, b, alpha=a, dilation=d, impl="reference")
    expected = torch.zeros_like(out)
    for j in range(2):
        for y in range(4):
            for xx in range(5):
                acc = b[j].clone()
                for ky in range(3):
                    for kx in range(3):
                        yy, xq = y + (ky - 1) * d, xx + (kx - 1) * d
                        if 0 <= yy < 4 and 0 <= xq < 5:
                            k = torch.exp(-a * ((g[0, :, y, xx] - g[0, :, yy, xq]) ** 2).sum())
                            acc = acc + (w[j, :, ky, kx] * x[0, :, yy, xq]).sum() * k
                expected[0, j, y, xx] = acc
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_chunked_matches_reference(case):
    *shape, dilation, kernel = case
    tensors = make_inputs(*shape)
    ref = run(tensors, "reference", dilation, kernel)
    chunked = run(tensors, "chunked", dilation, kernel, grad_out=ref[2], chunk_rows=2)
    assert_close_all(ref, chunked, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_taps_matches_reference(case):
    *shape, dilation, kernel = case
    tensors = make_inputs(*shape)
    ref = run(tensors, "reference", dilation, kernel)
    taps = run(tensors, "taps", dilation, kernel, grad_out=ref[2])
    assert_close_all(ref, taps, atol=1e-10, rtol=1e-10)


def test_gradcheck_taps_float64():
    x, g, w, b, a = make_inputs(2, 3, 2, 2, 5, 6)
    assert torch.autograd.gradcheck(
        lambda *t: depth_aware_conv2d(*t[:4], alpha=t[4], dilation=2, impl="taps"),
        (x, g, w, b, a))


# Triton's CPU interpreter takes 1-5 s a case: the fast lane keeps the first (G = 1) and the
# every-tap-outside case; CI runs all six
TRITON_CASES = [c if i in (0, 3) else pytest.param(c, marks=pytest.mark.slow)
                for i, c in enumerate(CASES)]


@needs_triton
@pytest.mark.parametrize("case", TRITON_CASES)
def test_triton_matches_reference(case, no_tf32):
    *shape, dilation, kernel = case
    tensors = make_inputs(*shape, dtype=torch.float32, device=TRITON_DEVICE)
    ref = run(tensors, "reference", dilation, kernel)
    tri = run(tensors, "triton", dilation, kernel, grad_out=ref[2])
    assert_close_all(ref, tri, atol=1e-4, rtol=1e-4)


BF16_ON_GPU_ONLY = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="Triton's CPU interpreter miscomputes tl.dot on bfloat16 (even a bare 16x16 dot); "
           "bfloat16 is checked on a GPU only")


@needs_triton
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16,
                                   pytest.param(torch.bfloat16, marks=BF16_ON_GPU_ONLY)])
def test_triton_half_precision(dtype, no_tf32):
    """Half-precision activations (as under autocast): fp32 accumulation keeps ~1e-2 accuracy."""
    tensors = make_inputs(2, 5, 4, 2, 9, 11, dtype=torch.float32, device=TRITON_DEVICE)
    ref = run(tensors, "reference", 2, "gaussian")
    half_x = tensors[0].detach().to(dtype).requires_grad_()
    out, grads, _ = run([half_x, *tensors[1:]], "triton", 2, "gaussian", grad_out=ref[2].to(dtype))
    assert out.dtype == dtype and grads[0].dtype == dtype
    for name, got, want in zip(("output", *ARGS), (out, *grads), (ref[0], *ref[1])):
        err = (got.float() - want).abs().max() / want.abs().max()
        assert err < 2e-2, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("impl", ["chunked", TRITON_SLOW])
@pytest.mark.parametrize("trainable", [("guidance", "alpha"), ("weight",), ("input", "bias")])
def test_partial_requires_grad(impl, trainable, no_tf32):
    """Frozen arguments: the skipped gradients stay skipped and the others still match."""
    dtype = torch.float32 if impl == "triton" else torch.float64
    device = TRITON_DEVICE if impl == "triton" else "cpu"
    tensors = make_inputs(2, 3, 3, 2, 7, 8, dtype=dtype, device=device)
    tensors = [t if name in trainable else t.detach() for name, t in zip(ARGS, tensors)]
    ref = run(tensors, "reference", 2, "gaussian")
    other = run(tensors, impl, 2, "gaussian", grad_out=ref[2], chunk_rows=3)
    assert_close_all(ref, other, atol=1e-4, rtol=1e-4, names=trainable)


@pytest.mark.parametrize("impl", ["chunked", TRITON_SLOW])
def test_l1_ties_in_the_guidance(impl, no_tf32):
    """Integer guidance makes |g(p) - g(p+o)| = 0 at many taps: d|x|/dx there must be 0.

    That is as in torch (an implementation using sign(0) = +-1 fails here, not on continuous
    guidance).
    """
    dtype = torch.float32 if impl == "triton" else torch.float64
    device = TRITON_DEVICE if impl == "triton" else "cpu"
    tensors = make_inputs(2, 3, 2, 2, 7, 8, dtype=dtype, device=device)
    tensors[1] = torch.round(2 * tensors[1].detach()).requires_grad_()
    ref = run(tensors, "reference", 1, "l1")
    other = run(tensors, impl, 1, "l1", grad_out=ref[2], chunk_rows=3)
    assert_close_all(ref, other, atol=1e-4, rtol=1e-4)


def test_chunked_never_unfolds_the_whole_map(monkeypatch):
    """Every F.unfold the chunked path makes (forward and backward) is one band, not the map."""
    b, c, h, w, rows = 2, 4, 12, 9, 2
    tensors = make_inputs(b, c, 3, 1, h, w)
    sizes = []
    unfold = F.unfold

    def recording_unfold(t, *args, **kwargs):
        out = unfold(t, *args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(F, "unfold", recording_unfold)
    ref = run(tensors, "reference", 3, "gaussian")
    assert max(sizes) == b * c * 9 * h * w  # the probe sees the reference's full unfold
    sizes.clear()
    chunked = run(tensors, "chunked", 3, "gaussian", grad_out=ref[2], chunk_rows=rows)
    n_bands = h // rows
    assert len(sizes) == 2 * 2 * n_bands  # input + guidance, forward + recompute, per band
    assert max(sizes) == b * c * 9 * rows * w
    assert_close_all(ref, chunked, atol=1e-10, rtol=1e-10)


def peak_cpu_bytes(fn, tmp_path) -> int:
    """Peak of PyTorch's CPU allocations during fn (profiler memory events' running total)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        fn()
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    return max([0] + [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"])


def test_chunked_peak_memory_is_bounded_by_the_band(tmp_path):
    """Forward + backward peak: a few input-sized buffers plus a few bands, never the unfold."""
    b, c, h, w, rows = 1, 8, 64, 40, 4
    tensors = make_inputs(b, c, c, 2, h, w, dtype=torch.float32)
    input_bytes, unfold_bytes = b * c * h * w * 4, 9 * b * c * h * w * 4
    band_bytes = unfold_bytes * rows // h
    peaks = {impl: peak_cpu_bytes(lambda impl=impl: run(tensors, impl, 3, "gaussian",
                                                        chunk_rows=rows), tmp_path)
             for impl in ("reference", "chunked")}
    assert peaks["reference"] > unfold_bytes  # the measurement sees the full unfold
    assert peaks["chunked"] < 6 * input_bytes + 4 * band_bytes, peaks
    assert peaks["chunked"] < peaks["reference"] / 4, peaks


def test_auto_on_cpu_picks_taps_for_layers_that_do_not_widen():
    x, g, w, b, a = make_inputs(2, 3, 2, 1, 8, 8)
    assert dac.resolve_impl(x, "auto", out_channels=3) == "taps"
    assert dac.resolve_impl(x, "auto", out_channels=4) == "reference"
    out = depth_aware_conv2d(x, g, w, b, alpha=a, impl="auto")  # C' = 2 <= C = 3: taps
    torch.testing.assert_close(out, depth_aware_conv2d(x, g, w, b, alpha=a, impl="reference"))


def test_auto_on_cpu_picks_reference_then_chunked(monkeypatch):
    x, g, w, b, a = make_inputs(2, 3, 2, 1, 8, 8)
    assert dac.resolve_impl(x, "auto") == "reference"  # one band would cover the map
    assert dac.resolve_impl(x, "auto", chunk_rows=4) == "chunked"
    row_bytes = 2 * 3 * 9 * 8 * x.element_size()
    monkeypatch.setattr(dac, "DEFAULT_CHUNK_BYTES", 3 * row_bytes)
    assert dac.band_rows(x, None) == 3
    assert dac.resolve_impl(x, "auto") == "chunked"
    assert dac.resolve_impl(x, "reference") == "reference"  # an explicit choice wins
    out = depth_aware_conv2d(x, g, w, b, alpha=a, impl="auto")
    torch.testing.assert_close(out, depth_aware_conv2d(x, g, w, b, alpha=a, impl="reference"))
    with pytest.raises(ValueError, match="chunk_rows"):
        depth_aware_conv2d(x, g, w, b, alpha=a, impl="chunked", chunk_rows=0)


@pytest.mark.parametrize("bad, match", [
    (dict(guidance=torch.zeros(2, 1, 4, 8)), "resize it"),
    (dict(weight=torch.zeros(2, 4, 3, 3)), "weight must be"),
    (dict(dilation=0), "dilation"),
    (dict(kernel="cauchy"), "kernel must be one of"),
    (dict(impl="cuda"), "impl must be one of"),
    (dict(alpha=torch.ones(2)), "scalar"),
])
def test_bad_arguments_are_named(bad, match):
    args = dict(input=torch.zeros(2, 3, 8, 8), guidance=torch.zeros(2, 1, 8, 8),
                weight=torch.zeros(2, 3, 3, 3), alpha=torch.tensor(1.0))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        depth_aware_conv2d(**args)


@needs_triton
def test_triton_on_cpu_without_interpreter_explains(monkeypatch):
    x, g, w, b, a = make_inputs(1, 2, 2, 1, 5, 5, dtype=torch.float32)
    module = importlib.import_module("depth_kd_core.kernels.depth_aware_conv_triton")
    monkeypatch.setattr(module, "INTERPRETED", False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        depth_aware_conv2d(x, g, w, b, alpha=a, impl="triton")
    with pytest.raises(ValueError, match="float64"):
        depth_aware_conv2d(x.double(), g, w, b, alpha=a, impl="triton")


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dilation, kernel", [(1, "gaussian"), (12, "l1")])
def test_cuda_triton_matches_reference_at_dacnn_size(dilation, kernel, no_tf32):
    tensors = make_inputs(2, 64, 48, 8, 44, 152, dtype=torch.float32, device="cuda")
    assert dac.resolve_impl(tensors[0], "auto") == "triton"
    ref = run(tensors, "reference", dilation, kernel)
    tri = run(tensors, "triton", dilation, kernel, grad_out=ref[2])
    assert_close_all(ref, tri, atol=2e-3, rtol=2e-3)


@requires_cuda
@pytest.mark.cuda
def test_cuda_triton_peak_memory_below_quarter_of_reference():
    tensors = make_inputs(4, 64, 64, 4, 44, 152, dtype=torch.float32, device="cuda")
    peaks = {}
    for impl in ("reference", "triton"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run(tensors, impl, 6, "gaussian")
        torch.cuda.synchronize()
        peaks[impl] = torch.cuda.max_memory_allocated() - base
    assert peaks["triton"] <= peaks["reference"] / 4, peaks
