"""Specifications of the five KD recipes (METHODS.md).

One training step returns the paper's weighted sum of its terms, and the student's gradient
depends on what the teacher says.

Networks are replaced by stubs returning fixed tensors, so each expected total is rebuilt here
from the loss functions and the paper's weights, written as literals. A recipe whose KD terms
are zeroed (its no-KD twin) fails these tests. Stubbed outputs need not be consistent with
each other (a depth need not match its disparity): the specification is how terms combine.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from depth_kd_core.errors import ConfigError
from depth_kd_core.layers.disparity_volume import synthesize_right
from depth_kd_core.layers.geometry import invert_rigid, warp_horizontal
from depth_kd_core.losses.adu import focal_depth_loss, umf_loss, umr_loss
from depth_kd_core.losses.dacnn import guidance_kl
from depth_kd_core.losses.depth import l1_loss, silog_loss
from depth_kd_core.losses.photometric import photometric_error, reconstruction_loss
from depth_kd_core.losses.sdfa import (
    edge_mask,
    photometric_mask,
    self_distillation_loss,
    visible_mask,
)
from depth_kd_core.losses.smoothness import edge_aware_smoothness, sdfa_smoothness
from depth_kd_core.losses.tiekd import depth_ssim_loss, dpm_kl, teacher_dpm
from depth_kd_core.losses.xdistill import d2s_loss
from depth_kd_core.models.registry import model_cfg
from depth_kd_core.recipes.selfsup import video_warp_loss

from inference_helpers import torch_single_thread  # noqa: F401 - module fixture
from recipe_steps import (
    D2S_B,
    D2S_W,
    SDFA_STAGE2,
    B,
    H,
    PoseStub,
    W,
    adu_step,
    build,
    dacnn_step,
    fixed_batch,
    sdfa_step,
    teacher_ids,
    tiekd_centres,
    tiekd_step,
    x_distill_step,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_dacnn_loss_is_pixel_plus_0p01_smooth_plus_0p01_proxy_plus_1000_guidance():
    """DACNN eq. 7: L_S = L_pixel + 0.01 L_smooth + 0.01 L_proxy + 1000 L_guidance.

    L_guidance is the KL averaged over every guidance element (nn.KLDivLoss's mean).
    """
    step = dacnn_step()
    s, t, batch = step.student, step.teacher, step.batch
    gt = batch["depth_gt"]  # valid GT within the student's 80 m only (row 0 void, row 1 far)
    l_pixel = l1_loss(s["depth"], gt, (gt > 0) & (gt <= 80.0))
    l_smooth = edge_aware_smoothness(s["depth"], batch["left"], normalize=False)
    l_proxy = l1_loss(s["depth"], t["depth"])
    l_guidance = guidance_kl(t["guidance"], s["guidance"], "element")
    expected = l_pixel + 0.01 * l_smooth + 0.01 * l_proxy + 1000 * l_guidance
    assert_close(step.out["loss"].detach(), expected.detach())
    assert_close(step.out["proxy"].detach(), l_proxy.detach())
    assert_close(step.out["guidance"].detach(), l_guidance.detach())
    assert step.out["proxy"] > 0.5 and step.out["guidance"] > 0.001


def test_adu_depth_loss_is_silog_plus_0p9_umr_plus_0p6_umf_plus_0p8_focal():
    """ADU-Depth eq. 9 (KITTI): L = L_b + 0.9 L_umr + 0.6 L_umf + 0.8 L_focal."""
    step = adu_step()
    s, t, gt = step.student, step.teacher, step.batch["depth_gt"]
    l_b = silog_loss(s["depth"], gt, (gt > 1.0) & (gt <= 80.0))  # NeWCRFs: GT > 1 m
    l_umr = umr_loss(t["depth"], s["depth"], s["log_var"])
    l_umf = umf_loss(t["features"], s["features"], s["log_var"])
    l_focal = focal_depth_loss(t["depth"], s["depth"], alpha=0.25, gamma=2.0)
    expected = l_b + 0.9 * l_umr + 0.6 * l_umf + 0.8 * l_focal
    assert_close(step.out["loss"].detach(), expected.detach())
    # p_d = 1 - |d_t - 0.8 d_t| / d_t = 0.8 in both images: -0.25 (1 - 0.8)^2 ln 0.8
    assert_close(step.out["focal"].detach(), torch.tensor(-0.25 * 0.2**2 * math.log(0.8)))
    assert step.out["umr"] > 0.5 and step.out["umf"] > 0.5


@pytest.mark.parametrize("loss", ["l1", "silog"])
def test_ground_truth_beyond_the_networks_range_is_left_out_unless_kept(loss):
    """A head of sigmoid x 80 m cannot reach 200 m: that row trains nothing, unless "keep"."""
    batch = fixed_batch()
    depth = torch.full_like(batch["depth_gt"], 10.0)
    near = batch["depth_gt"].clone()
    near[:, :, 1] = 0.0  # the 200 m row, left out
    expected = l1_loss(depth, near) if loss == "l1" else silog_loss(depth, near, near > 1.0)
    terms = {}
    for mode in ("ignore", "keep"):
        recipe = build("supervised", loss=loss, gt_beyond_range=mode)
        recipe.predict = lambda batch: {"depth": depth}
        terms[mode] = recipe.training_step(batch, 0)["gt_loss"]
    assert_close(terms["ignore"], expected)
    assert terms["keep"] > 1.5 * terms["ignore"]


@pytest.mark.parametrize("step,lam", [(0, 0.0), (2, 0.0025), (4, 0.005)])
def test_x_distill_loss_is_monodepth2_plus_ramped_lambda_times_d2s(step, lam):
    """X-Distill eq. 4: Monodepth2 loss + lambda_D2S L_D2S, lambda ramping 0 -> 0.005."""
    out = x_distill_step(step=step)
    s, batch = out.student, out.batch
    stub = PoseStub()  # Monodepth2's order: (prev, target) inverted, then (target, next)
    poses = [invert_rigid(stub(batch["prev"], batch["left"])["T"]),
             stub(batch["left"], batch["next"])["T"]]
    torch.manual_seed(1)
    student_cfg = model_cfg("test_monodepth_student")
    monodepth2 = video_warp_loss(s, poses, [batch["prev"], batch["next"]], batch,
                                 student_cfg)["loss"]
    logits = D2S_W.view(1, 4, 1, 1) * s["sigmoid_disp"][0] + D2S_B.view(1, 4, 1, 1)
    l_d2s = d2s_loss(logits, teacher_ids(False))
    assert_close(out.out["loss"].detach(), (monodepth2 + lam * l_d2s).detach())
    assert_close(out.out["d2s_weight"], torch.tensor(lam))
    assert out.out["d2s"] > 0.5


def test_video_poses_see_pairs_in_temporal_order_and_invert_the_previous():
    """Monodepth2: the pose net sees (prev, target) and (target, next), the previous inverted.

    So a pose net with one constant output (the stub: 5 cm along x) moves the previous frame
    one way and the next frame the other.
    """
    recipe = build("selfsup_mono")
    calls = []

    class Recording(PoseStub):
        def forward(self, target, source):
            calls.append((target, source))
            return super().forward(target, source)

    recipe.extras["pose_net"] = Recording()
    batch = fixed_batch()
    T_prev, T_next = recipe.video_poses(batch)
    assert calls[0][0] is batch["prev"] and calls[0][1] is batch["left"]
    assert calls[1][0] is batch["left"] and calls[1][1] is batch["next"]
    assert_close(T_next[:, 0, 3], torch.full((B,), 0.05))
    assert_close(T_prev[:, 0, 3], torch.full((B,), -0.05))
    assert_close(T_prev @ T_next, torch.eye(4).expand(B, 4, 4))


def test_sdfa_net_loss_is_rec_plus_0p01_sd_plus_0p0008_and_0p0016_smoothness():
    """SDFA-Net eq. 18: L = L_rec + 0.01 L_sd + 0.0008 L_smo^raw + 0.0016 L_smo^d."""
    step = sdfa_step()
    dist, raw, batch = step.student, step.teacher, step.batch
    left, right = batch["left"], batch["right"]
    levels = build("sdfa_net").student.levels(W)
    # default cfg: perceptual="none" (VGG19 weights need a download), so L_rec is its L1 part
    l_rec = reconstruction_loss(synthesize_right(raw["disp_volume"], left, levels), right)
    err_raw = photometric_error(warp_horizontal(right, raw["disp"])[0], left)
    err_dist = photometric_error(warp_horizontal(right, dist["disp"])[0], left)
    mask = (photometric_mask(err_raw, err_dist, t1=1e-5, t2=0.2)
            * visible_mask(dist["disp"], search=61, threshold=0.5) * edge_mask(dist["disp"]))
    l_sd = self_distillation_loss(dist["depth"], raw["depth"], mask)
    expected = (l_rec + 0.01 * l_sd + 0.0008 * sdfa_smoothness(raw["disp"], left)
                + 0.0016 * sdfa_smoothness(dist["disp"], left))
    assert_close(step.out["loss"].detach(), expected.detach())
    assert 0.5 < mask.mean() < 1.0  # most pixels distil; the left edge and bad pixels do not
    assert step.out["sd"] > 0.1


def test_sdfa_net_stage1_is_rec_plus_0p0008_raw_smoothness_without_distillation():
    """Before epoch 25 only the raw path trains: L = L_rec + 0.0008 L_smo^raw."""
    step = sdfa_step(step=SDFA_STAGE2 - 1)
    raw, left = step.teacher, step.batch["left"]
    levels = build("sdfa_net").student.levels(W)
    l_rec = reconstruction_loss(synthesize_right(raw["disp_volume"], left, levels),
                                step.batch["right"])
    expected = l_rec + 0.0008 * sdfa_smoothness(raw["disp"], left)
    assert_close(step.out["loss"].detach(), expected.detach())
    assert "sd" not in step.out


def test_tie_kd_loss_is_10_times_0p1_kl_plus_0p9_one_minus_ssim():
    """TIE-KD eq. 4-6: L = 10 (0.1 KL(DPM_T || DPM_S) + 0.9 (1 - SSIM(d_S, d_T))), sigma 0.8 m."""
    step = tiekd_step()
    s, t = step.student, step.teacher
    l_dpm = dpm_kl(teacher_dpm(t["depth"], tiekd_centres(), sigma=0.8), s["dpm"])
    l_depth = depth_ssim_loss(s["depth"], t["depth"])
    expected = 10 * (0.1 * l_dpm + 0.9 * l_depth)
    assert_close(step.out["loss"].detach(), expected.detach())
    assert step.out["l_dpm"] > 0.1 and step.out["l_depth"] > 0.01


def test_tie_kd_confidence_weighting_weights_each_pixels_kl_by_the_teachers_confidence():
    """recipe.confidence_weight (project option, off in the paper) weights the KL by confidence.

    The KL term becomes the confidence-weighted mean KL; the SSIM term is unchanged.
    """
    plain = tiekd_step()
    conf = torch.linspace(0.0, 1.0, W).expand(B, 1, H, W).clone()
    conf[0, :, : H // 2] = 0.1  # a less certain region, as the dense teacher's filled holes
    recipe = build("tie_kd", confidence_weight=True)
    recipe.teacher_output = lambda batch: {**plain.teacher, "confidence": conf}
    recipe.predict = lambda batch: plain.student
    out = recipe.training_step(plain.batch, 0)
    t, s = plain.teacher, plain.student
    per_pixel = dpm_kl_per_pixel(teacher_dpm(t["depth"], tiekd_centres(), sigma=0.8), s["dpm"])
    l_dpm = (per_pixel * conf).sum() / conf.sum()
    expected = 10 * (0.1 * l_dpm + 0.9 * depth_ssim_loss(s["depth"], t["depth"]))
    assert_close(out["loss"].detach(), expected.detach())
    assert not torch.isclose(out["loss"], plain.out["loss"])  # the weighting matters
    recipe.teacher_output = lambda batch: plain.teacher  # a teacher without confidence
    with pytest.raises(ConfigError, match="gives no per-pixel confidence"):
        recipe.training_step(plain.batch, 0)


def dpm_kl_per_pixel(p_teacher: torch.Tensor, p_student: torch.Tensor) -> torch.Tensor:
    """TIE-KD eq. 5 before the mean: sum_i P_T log(P_T / (P_S + 1e-7) + 1e-7) per pixel."""
    terms = p_teacher * torch.log(p_teacher / (p_student + 1e-7) + 1e-7)
    return torch.where(p_student > 0, terms, torch.zeros_like(terms)).sum(1, keepdim=True)
