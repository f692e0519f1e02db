"""Every registered model, through its tiny test_ variant.

Forward on CPU, declared outputs and units, gradients, freezing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_kd_core.data.semantics import GROUP_OF_TRAINID, XDISTILL_GROUPS, regroup_labels
from depth_kd_core.models import create_model
from depth_kd_core.models.base import DepthModel, freeze
from depth_kd_core.models.encoders import ENCODERS, Encoder
from depth_kd_core.models.sdfa import SdfaNet

from conftest import realdata_path
from tiny import PREFIX, PRODUCTION, TEST_MODELS

H, W, B = 64, 192, 2
K = torch.tensor([[0.58 * W, 0, W / 2], [0, 0.58 * W, H / 2], [0, 0, 1.0]]).expand(B, 3, 3)
BASELINE = torch.full((B,), 0.54)


SHIFT_PX = 4  # the right image is the left one moved 4 px: a true disparity for SGBM


def _inputs():
    g = torch.Generator().manual_seed(0)
    left = torch.rand(B, 3, H, W, generator=g)
    right = torch.roll(left, shifts=-SHIFT_PX, dims=3)
    teacher = 1.0 + 40.0 * torch.rand(B, 1, H, W, generator=g)
    return left, right, dict(K=K, baseline=BASELINE, teacher_depth=teacher)


def _run(model, left, right, ctx):
    """All outputs a training recipe would use (SDFA: both data paths)."""
    if isinstance(model, SdfaNet):
        return [model(left, path="raw", **ctx), model(left, path="distilled", flip_features=True,
                                                      **ctx)]
    return [model(left, right, **ctx)]


def _tensors(out):
    for v in out.values():
        if torch.is_tensor(v):
            yield v
        else:
            yield from v


def test_every_model_has_a_tiny_test_variant():
    assert sorted(n[len(PREFIX):] for n in TEST_MODELS if n[len(PREFIX):] in PRODUCTION) == \
        PRODUCTION


@pytest.mark.parametrize("name", TEST_MODELS)
def test_model_forward_outputs_and_units(name):
    model = create_model(name)
    assert isinstance(model, DepthModel) and model.cfg.name == name
    left, right, ctx = _inputs()
    for out in _run(model, left, right, ctx):
        assert all(torch.isfinite(t).all() for t in _tensors(out)), "non-finite output"
        cfg = model.cfg
        if "depth" in out:
            depth = out["depth"]
            assert depth.shape == (B, 1, H, W)
            valid = depth > 0
            if cfg.classical:  # a matcher: matched pixels' disparity is the true shift
                matched = valid & (out["confidence"] > model.cfg.fill_confidence)  # not filled
                assert matched.float().mean() > 0.5
                torch.testing.assert_close(out["disp"][matched], torch.full_like(
                    out["disp"][matched], float(SHIFT_PX)), atol=model.cfg.lr_tolerance_px, rtol=0)
            else:
                assert valid.all(), "depth must be positive everywhere for networks"
            assert depth[valid].min() >= cfg.min_depth * 0.999
            assert depth.max() <= max(cfg.max_depth, 1e4)
        assert ("sigma" in out) == cfg.has_sigma, "the declared has_sigma is wrong"
        if "sigma" in out:
            assert out["sigma"].shape == (B, 1, H, W) and (out["sigma"] >= 0).all()
        if "log_var" in out:
            s = out["log_var"]
            assert s.min() >= cfg.s_min - 1e-5 and s.max() <= cfg.s_max + 1e-5
            torch.testing.assert_close(out["sigma"], torch.exp(s))  # laplace mode: metres
        if "dpm" in out:
            assert out["dpm"].shape == (B, cfg.n_bins, H, W)
            torch.testing.assert_close(out["dpm"].sum(1), torch.ones(B, H, W))
        if "disp_volume" in out:
            assert out["disp_volume"].shape == (B, cfg.n_levels, H, W)
            # depth = fx * baseline / disparity (metres from pixels)
            torch.testing.assert_close(out["depth"] * out["disp"],
                                       (K[:, 0, 0] * BASELINE).view(B, 1, 1, 1).expand(B, 1, H, W))
        if "semantics" in out:
            assert out["semantics"].shape == (B, cfg.num_classes, H, W)
        if "T" in out:
            R = out["T"][:, :3, :3]
            torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(B, 3, 3),
                                       atol=1e-5, rtol=0)
        if "guidance" in out:
            assert len(out["guidance"]) == 3


@pytest.mark.parametrize("name", TEST_MODELS)
def test_gradient_reaches_every_trainable_parameter(name):
    model = create_model(name)
    model.train()
    left, right, ctx = _inputs()
    loss = sum(t.float().mean() for out in _run(model, left, right, ctx) for t in _tensors(out)
               if t.requires_grad)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        pytest.skip(f"{name} has no trainable parameters (classical/precomputed teacher)")
    loss.backward()
    missing = [n for n, p in params if p.grad is None]
    assert missing == [], f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)


@pytest.mark.parametrize("name", TEST_MODELS)
def test_frozen_teacher_outputs_do_not_require_grad(name):
    model = freeze(create_model(name))
    model.train()  # a recipe's train() must not unfreeze a teacher
    assert not model.training
    left, right, ctx = _inputs()
    for out in _run(model, left, right, ctx):
        assert not any(t.requires_grad for t in _tensors(out))


@pytest.mark.parametrize("name", ["test_resnet", "test_mobilenet", "test_swin"])
def test_encoder_feature_info_matches_real_shapes(name):
    enc = Encoder(name)
    feats = enc(torch.rand(1, 3, H, W))
    assert [f.shape[1] for f in feats] == enc.channels
    assert [H // f.shape[2] for f in feats] == enc.strides
    assert [W // f.shape[3] for f in feats] == enc.strides
    if ENCODERS[name].swin_stride2:
        assert enc.strides == [2, 4, 8, 16]  # SDFA's stride-2 patch embedding


def test_tiekd_regression_baseline_is_the_student_with_a_depth_head():
    """TIE-KD's no-KD baseline: same encoder and decoder, the DPM layer replaced by regression."""
    dpm = create_model("test_tiekd_student", input_height=64, input_width=192)
    reg = create_model("test_tiekd_student", head="regression", input_height=64, input_width=192)
    assert (reg.cfg.output_kind, reg.cfg.has_sigma) == ("metric_depth", False)
    assert (dpm.cfg.output_kind, dpm.cfg.has_sigma) == ("dpm", True)
    body = {k: v.shape for k, v in reg.state_dict().items() if not k.startswith("head.")}
    assert body == {k: v.shape for k, v in dpm.state_dict().items() if not k.startswith("head.")}
    out = reg(torch.rand(2, 3, 64, 192))
    assert set(out) == {"depth"} and out["depth"].shape == (2, 1, 64, 192)
    assert ((out["depth"] > reg.cfg.min_depth) & (out["depth"] < reg.cfg.max_depth)).all()


def test_pose_net_init_forward_starts_it_driving_forward_and_changes_nothing_else():
    """``init_forward`` f: the untrained pose net moves points f towards the camera (t_z - f)."""
    frames = torch.rand(2, 3, 64, 192), torch.rand(2, 3, 64, 192)
    torch.manual_seed(3)
    plain = create_model("test_pose_net")(*frames)
    torch.manual_seed(3)
    forward = create_model("test_pose_net", init_forward=0.2)(*frames)
    shift = torch.tensor([0.0, 0.0, -0.2]).expand(2, 3)
    torch.testing.assert_close(forward["translation"], plain["translation"] + shift)
    torch.testing.assert_close(forward["axisangle"], plain["axisangle"])


def test_wrong_input_size_is_refused_with_a_clear_message():
    model = create_model("test_monodepth_student")
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 60, 190))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 192))


def test_xdistill_regrouping_table_matches_the_paper():
    assert sorted(sum(XDISTILL_GROUPS.values(), ())) == list(range(19))  # a partition
    labels = torch.tensor([0, 1, 2, 5, 6, 7, 8, 10, 11, 13, 18, 255])
    expected = torch.tensor([3, 3, 2, 0, 0, 0, 2, 2, 1, 1, 1, 255])
    assert torch.equal(regroup_labels(labels), expected)
    assert GROUP_OF_TRAINID[19] == 255  # unknown ids are void


@pytest.mark.realdata
def test_sgbm_teacher_on_middlebury_within_3px():
    from middlebury import load_middlebury

    pair = load_middlebury(realdata_path("middlebury_motorcycle_quarter"))
    model = create_model("sgbm_teacher", num_disparities=80)
    to_t = lambda im: torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    fx = torch.tensor([[[pair.focal_px, 0, 0], [0, pair.focal_px, 0], [0, 0, 1]]])
    out = model(to_t(pair.left), to_t(pair.right), K=fx, baseline=torch.tensor([0.193]))
    disp = out["disp"][0, 0].numpy()
    known = pair.nonoccluded & np.isfinite(pair.disparity)
    close = (np.abs(disp - pair.disparity) < 3.0) & (disp > 0) & known
    assert close.sum() / known.sum() > 0.7  # "most non-occluded pixels"
    d = out["depth"][0, 0].numpy()
    m = disp > 0
    np.testing.assert_allclose(d[m] * disp[m], pair.focal_px * 0.193, rtol=1e-4)
