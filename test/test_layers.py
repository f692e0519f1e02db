"""Shared layers checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from depth_kd_core.layers.attention import AttentionAdapter
from depth_kd_core.layers.disparity_volume import (
    expected_disparity,
    exponential_levels,
    shift_levels,
    synthesize_right,
)
from depth_kd_core.layers.dpm import DPMHead, bin_centres, dpm_expectation, dpm_std
from depth_kd_core.layers.geometry import (
    backproject,
    disp_to_depth,
    invert_rigid,
    pose_to_matrix,
    project,
    warp_horizontal,
)
from depth_kd_core.layers.sdfa import SDFA, offset_resample
from depth_kd_core.layers.ssim import SSIM_C1, box_mean3, gaussian_ssim, ssim_loss_map
from depth_kd_core.layers.uncertainty import UncertaintyHead, sigma_from_log_var
from depth_kd_core.models.crf_decoder import _merge, _windows


def ramp(h=6, w=16):
    return torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w).clone()


def test_exponential_levels_span_2_to_300_geometrically():
    d = exponential_levels(49, 2.0, 300.0)
    assert d[0].item() == pytest.approx(2.0) and d[-1].item() == pytest.approx(300.0)
    ratios = d[1:] / d[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (150.0) ** (1 / 48)))


def test_expected_disparity_of_a_peaked_volume_is_that_level():
    levels = exponential_levels(49)
    logits = torch.full((1, 49, 2, 2), -50.0)
    logits[:, 10] = 50.0
    torch.testing.assert_close(expected_disparity(logits, levels),
                               torch.full((1, 1, 2, 2), levels[10].item()))


def test_shift_levels_uses_the_authors_normalisation():
    x = ramp().expand(1, 2, 6, 16).clone()
    out = shift_levels(x, torch.tensor([2.0, 4.0]))
    # normalised offset s / (W / 2) with align_corners=True moves s * (W - 1) / W pixels
    torch.testing.assert_close(out[0, 0, :, 3:10], x[0, 0, :, 3:10] + 2.0 * 15 / 16)
    torch.testing.assert_close(out[0, 1, :, 3:10], x[0, 1, :, 3:10] + 4.0 * 15 / 16)


def test_synthesized_right_view_of_constant_disparity_is_a_shift():
    levels = torch.tensor([1.0, 2.0, 3.0])
    image = ramp().expand(1, 3, 6, 16).clone()
    logits = torch.full((1, 3, 6, 16), -30.0)
    logits[:, 1] = 30.0  # disparity 2 everywhere
    right = synthesize_right(logits, image, levels)
    torch.testing.assert_close(right[0, :, :, 2:10], image[0, :, :, 2:10] + 2.0 * 15 / 16)


def test_sdfa_starts_as_plain_bilinear_aggregation():
    torch.manual_seed(0)
    module = SDFA(4).eval()
    high, low = torch.randn(1, 4, 3, 5), torch.randn(1, 4, 6, 10)
    expected = torch.nn.functional.interpolate(high, size=(6, 10), mode="bilinear",
                                               align_corners=True) + low
    for distilled in (False, True):
        torch.testing.assert_close(module(high, low, distilled=distilled), expected)


def test_offset_resample_moves_features_by_whole_pixels():
    feat = ramp(4, 8)
    offset = torch.zeros(1, 2, 4, 8)
    offset[:, 0] = 2.0  # sample two pixels to the right
    out = offset_resample(feat, offset)
    torch.testing.assert_close(out[..., :6], feat[..., :6] + 2)
    assert (out[..., 7] == 0).all()  # zero padding outside


def test_ssim_of_constant_images_by_hand():
    a, b = 0.2, 0.6
    full = lambda v: torch.full((1, 1, 5, 5), v, dtype=torch.float64)  # noqa: E731
    loss = ssim_loss_map(full(a), full(b))
    expected = (1 - (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)) / 2
    torch.testing.assert_close(loss, torch.full_like(loss, expected))
    x = torch.rand(1, 3, 9, 9)
    assert ssim_loss_map(x, x).max() < 1e-6
    assert gaussian_ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert gaussian_ssim(x, 1 - x).item() < 0.5


def test_the_ssim_window_mean_is_a_3x3_average_pool_in_values_and_gradients():
    t = torch.rand(2, 3, 7, 9, dtype=torch.float64, requires_grad=True)
    got, want = box_mean3(t), F.avg_pool2d(t, 3, 1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad((got * w).sum(), t)[0],
                               torch.autograd.grad((want * w).sum(), t)[0],
                               rtol=1e-12, atol=1e-12)


def test_backproject_project_round_trip_and_stereo_disparity():
    B, H, W = 1, 5, 7
    K = torch.tensor([[[10.0, 0, 3], [0, 10.0, 2], [0, 0, 1]]])
    depth = torch.full((B, 1, H, W), 4.0)
    pts = backproject(depth, K)
    grid = project(pts, K, torch.eye(4)[None], H, W)
    u = (grid[..., 0] + 1) / 2 * (W - 1)
    torch.testing.assert_close(u[0, 0], torch.arange(W, dtype=torch.float32))
    # into the right camera: u_r = u - fx * B / z = u - 10 * 0.8 / 4 = u - 2
    to_right = torch.eye(4)[None].clone()
    to_right[0, 0, 3] = -0.8  # the right camera sits 0.8 m along +x
    grid_r = project(pts, K, to_right, H, W)
    u_r = (grid_r[..., 0] + 1) / 2 * (W - 1)
    torch.testing.assert_close(u_r[0, 0], torch.arange(W, dtype=torch.float32) - 2.0)


def test_warp_horizontal_samples_at_x_minus_disparity():
    src = ramp(3, 10)
    warped, inside = warp_horizontal(src, torch.full((1, 1, 3, 10), 3.0))
    torch.testing.assert_close(warped[..., 3:], src[..., 3:] - 3)
    assert inside[..., :3].sum() == 0 and inside[..., 3:].all()


def test_pose_matrix_and_its_inverse():
    aa = torch.tensor([[0.0, 0.0, math.pi / 2]])
    t = torch.tensor([[1.0, 2.0, 3.0]])
    T = pose_to_matrix(aa, t)
    torch.testing.assert_close(T[0, :3, :3], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(pose_to_matrix(aa, t, invert=True) @ T, torch.eye(4)[None],
                               atol=1e-6, rtol=0)
    # the rigid inverse of a matrix equals the inverse built from the parameters
    torch.testing.assert_close(invert_rigid(T), pose_to_matrix(aa, t, invert=True),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(invert_rigid(T)[0, :3, 3], torch.tensor([-2.0, 1.0, -3.0]),
                               atol=1e-6, rtol=0)


def test_disp_to_depth_range():
    assert disp_to_depth(torch.tensor(0.0)).item() == pytest.approx(100.0)
    assert disp_to_depth(torch.tensor(1.0)).item() == pytest.approx(0.1)


def test_dpm_bins_expectation_and_spread():
    c = bin_centres()
    assert len(c) == 257
    width = (80.0 - 1e-3) / 257
    assert c[0].item() == pytest.approx(1e-3 + width / 2)
    assert c[-1].item() == pytest.approx(80 - width / 2)
    dpm = torch.zeros(1, 257, 1, 1)
    dpm[0, 100] = 0.5
    dpm[0, 102] = 0.5
    assert dpm_expectation(dpm, c).item() == pytest.approx(c[101].item(), rel=1e-5)
    assert dpm_std(dpm, c).item() == pytest.approx(width, rel=1e-4)


@pytest.mark.parametrize("trained", [("dpm", "depth", "sigma"), ("dpm", "depth"), ("depth",),
                                     ("dpm",), ("sigma",)])
def test_dpm_head_equals_the_reference_formulas_in_values_and_gradients(trained):
    """The head's bins-last layout computes exactly the reference formulas.

    That is softmax(conv, dim=1) -> expectation -> two-pass spread (float64, so any difference
    is a formula difference, not rounding), whichever outputs a loss reads (TIE-KD's: dpm and
    depth).
    """
    head = DPMHead(6, 33, 0.5, 40.0).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64, requires_grad=True)
    out = head(x)
    dpm = torch.softmax(head.conv(x), dim=1)
    ref_depth = dpm_expectation(dpm, head.centres)
    ref = {"dpm": dpm, "depth": ref_depth, "sigma": dpm_std(dpm, head.centres, ref_depth)}
    for key in ("dpm", "depth", "sigma"):
        assert out[key].shape == ref[key].shape
        torch.testing.assert_close(out[key], ref[key], rtol=1e-12, atol=1e-12)
    w = [torch.randn_like(ref[k]) for k in trained]
    loss = lambda o: sum((o[k] * wk).sum() for k, wk in zip(trained, w))  # noqa: E731
    got = torch.autograd.grad(loss(out), [x, head.conv.weight, head.conv.bias])
    want = torch.autograd.grad(loss(ref), [x, head.conv.weight, head.conv.bias])
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # inference takes plain operators: the same values, bit for bit
        plain = head(x)
    for key in ("dpm", "depth", "sigma"):
        assert torch.equal(plain[key], out[key])


def test_dpm_head_trains_in_float32_under_autocast():
    head = DPMHead(6, 33, 0.5, 40.0)
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the linear runs in bfloat16
        out = head(x)
        loss = sum((out[k] * (i + 1)).mean() for i, k in enumerate(("dpm", "depth", "sigma")))
    assert all(out[k].dtype == torch.float32 for k in out)
    loss.backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_dpm_head_sigma_of_a_peaked_far_dpm_is_exact_in_float32():
    """A DPM almost all on one far bin: sigma ~ 0.03 m at ~75 m.

    E[c^2] - E[c]^2 in float32 loses every digit here; the head's two-pass spread stays within
    1e-4 of float64.
    """
    head = DPMHead(1, 257)
    with torch.no_grad():
        head.conv.weight.zero_()
        head.conv.bias.copy_(-12.0 * (torch.arange(257) - 240.3).abs())  # logits peaked at 240
    out = head(torch.zeros(1, 1, 2, 2))
    p = torch.softmax(head.conv.bias.detach().double(), 0)
    c = bin_centres(dtype=torch.float64)
    mu = (p * c).sum()
    sigma = ((p * (c - mu) ** 2).sum()).sqrt()
    assert 0.001 < sigma < 0.1 and mu > 70
    torch.testing.assert_close(out["sigma"].double(), torch.full((1, 1, 2, 2), float(sigma),
                                                                 dtype=torch.float64),
                               rtol=1e-4, atol=0)
    naive = ((p.float() * c.float() ** 2).sum() - (p.float() * c.float()).sum() ** 2)
    assert abs(naive.clamp_min(0).sqrt() - sigma) / sigma > 1e-2  # why two passes


def test_uem_range_and_sigma_modes():
    head = UncertaintyHead(4)
    s = head(torch.randn(2, 4, 5, 5) * 100)
    assert s.min() >= -6 and s.max() <= 6
    s = torch.tensor([math.log(4.0)])
    assert sigma_from_log_var(s, "laplace").item() == pytest.approx(4.0)
    assert sigma_from_log_var(s, "gaussian").item() == pytest.approx(2.0)


def test_attention_adapter_is_softmax_qk_v():
    torch.manual_seed(0)
    adapter = AttentionAdapter(6, 4)
    x = torch.randn(1, 6, 3, 4)
    t = x.flatten(2).transpose(1, 2)
    q, k, v = adapter.q(t), adapter.k(t), adapter.v(t)
    ref = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(4), dim=-1) @ v
    torch.testing.assert_close(adapter(x), ref.transpose(1, 2).reshape(1, 4, 3, 4))


def test_window_partition_round_trip():
    x = torch.randn(2, 3, 14, 21)
    torch.testing.assert_close(_merge(_windows(x, 7), 2, 14, 21, 7), x)
