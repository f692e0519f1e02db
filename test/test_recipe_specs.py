"""Specifications of the five KD recipes (METHODS.md): one training step returns the paper's
weighted sum of its terms, and the student's gradient depends on what the teacher says.

Networks are replaced by stubs returning fixed tensors, so each expected total is rebuilt here
from the loss functions and the paper's weights, written as literals. A recipe whose KD terms
are zeroed (its no-KD twin) fails these tests. Stubbed outputs need not be consistent with
each other (a depth need not match its disparity): the specification is how terms combine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from depth_kd_core.errors import ConfigError
from depth_kd_core.layers.disparity_volume import synthesize_right
from depth_kd_core.layers.geometry import warp_horizontal
from depth_kd_core.losses.adu import focal_depth_loss, umf_loss, umr_loss
from depth_kd_core.losses.dacnn import guidance_kl
from depth_kd_core.losses.depth import l1_loss, silog_loss
from depth_kd_core.losses.photometric import photometric_error, reconstruction_loss
from depth_kd_core.losses.sdfa import edge_mask, photometric_mask, self_distillation_loss, \
    visible_mask
from depth_kd_core.losses.smoothness import edge_aware_smoothness, sdfa_smoothness
from depth_kd_core.losses.tiekd import depth_ssim_loss, dpm_kl, teacher_dpm
from depth_kd_core.losses.xdistill import d2s_loss
from depth_kd_core.models.registry import model_cfg
from depth_kd_core.recipes.registry import create_recipe, default_models
from depth_kd_core.recipes.selfsup import video_warp_loss
from tiny import tiny

B, H, W = 2, 16, 32
FX, BASELINE = 20.0, 0.5  # fx * B = 10 pixel-metres
SHIFT_PX = 2  # the right view is the left one moved 2 px: true disparity 2 px everywhere
TEACHER_CHANGE = 1.5  # the changed teacher says every depth is 1.5x further


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """16x32 tensors: a second intra-op thread only adds synchronisation (on a busy 2-core
    machine each small op took ~50x longer with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclasses.dataclass
class Step:
    """One training step on stubs: the recipe's output and the tensors it was fed.

    ``kd_leaves``: the student tensors a KD term must reach (the gradient test's targets).
    """

    out: dict
    batch: dict
    student: dict
    teacher: dict
    kd_leaves: dict[str, torch.Tensor]


def fixed_batch() -> dict:
    """B=2 random 16x32 views, a 2 px stereo shift, 1 px video motion; GT 4-12 m, row 0 void."""
    g = torch.Generator().manual_seed(15)
    left = torch.rand(B, 3, H, W, generator=g)
    K = torch.tensor([[FX, 0.0, W / 2], [0.0, FX, H / 2], [0.0, 0.0, 1.0]]).expand(B, 3, 3)
    depth_gt = torch.linspace(4.0, 12.0, W).expand(B, 1, H, W).clone()
    depth_gt[:, :, 0] = 0.0
    return {"left": left, "right": left.roll(-SHIFT_PX, dims=-1), "prev": left.roll(1, dims=-1),
            "next": left.roll(-1, dims=-1), "K": K.clone(), "baseline": torch.full((B,), BASELINE),
            "depth_gt": depth_gt}


def rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g)


def leaf(t: torch.Tensor) -> torch.Tensor:
    """A student output the gradient is taken against."""
    return t.detach().clone().requires_grad_()


def build(name: str, **cfg) -> nn.Module:
    """Recipe ``name`` with tiny networks (stubbed later) and its paper-default config but for
    ``cfg``."""
    student, teacher = default_models(name)
    teacher_cfg = None if teacher is None else model_cfg(tiny(teacher))
    if name == "x_distill":
        cfg.setdefault("pose_encoder", "test_resnet")
    return create_recipe(name, model=model_cfg(tiny(student)),
                         teacher=teacher_cfg, untrained_teacher_ok=True, **cfg)


def grads(step: Step) -> dict[str, torch.Tensor]:
    names = list(step.kd_leaves)
    g = torch.autograd.grad(step.out["loss"], [step.kd_leaves[n] for n in names])
    return dict(zip(names, g))


# ---------------------------------------------------------------------------------- DACNN


def dacnn_step(teacher_changed: bool = False, **cfg) -> Step:
    """Student: depth near the GT and 3 guidance maps; teacher: its own depth and guidance."""
    recipe, batch, g = build("dacnn", **cfg), fixed_batch(), torch.Generator().manual_seed(4)
    base = torch.linspace(4.0, 12.0, W).expand(B, 1, H, W)
    guid_shapes = [(B, 4, H // k, W // k) for k in (4, 2, 1)]
    s = {"depth": leaf(base + rand(g, B, 1, H, W)),
         "guidance": [leaf(torch.randn(*sh, generator=g)) for sh in guid_shapes]}
    scale = TEACHER_CHANGE if teacher_changed else 1.0
    t = {"depth": scale * (base + 2 * rand(g, B, 1, H, W)),  # guidance: s + noise, KL ~ 0.01
         "guidance": [scale * (x.detach() + 0.2 * torch.randn(*x.shape, generator=g))
                      for x in s["guidance"]]}
    recipe.teacher_output = lambda batch: t
    recipe.predict = lambda batch: s
    leaves = {"depth": s["depth"], **{f"guidance{k}": x for k, x in enumerate(s["guidance"])}}
    return Step(recipe.training_step(batch, 0), batch, s, t, leaves)


def test_dacnn_loss_is_pixel_plus_0p01_smooth_plus_0p01_proxy_plus_1000_guidance():
    """DACNN eq. 7: L_S = L_pixel + 0.01 L_smooth + 0.01 L_proxy + 1000 L_guidance."""
    step = dacnn_step()
    s, t, batch = step.student, step.teacher, step.batch
    l_pixel = l1_loss(s["depth"], batch["depth_gt"])  # valid GT only (row 0 is void)
    l_smooth = edge_aware_smoothness(s["depth"], batch["left"], normalize=False)
    l_proxy = l1_loss(s["depth"], t["depth"])
    l_guidance = guidance_kl(t["guidance"], s["guidance"])
    expected = l_pixel + 0.01 * l_smooth + 0.01 * l_proxy + 1000 * l_guidance
    assert_close(step.out["loss"].detach(), expected.detach())
    assert_close(step.out["proxy"].detach(), l_proxy.detach())
    assert_close(step.out["guidance"].detach(), l_guidance.detach())
    assert step.out["proxy"] > 0.5 and step.out["guidance"] > 0.01


# ---------------------------------------------------------------------------------- ADU-Depth


def adu_step(teacher_changed: bool = False, **cfg) -> Step:
    """Student depth = 0.8 x the teacher's (so p_d = 0.8); 2 feature levels; adapters and
    restoring blocks are identities, so L_umf compares the stubbed features directly."""
    recipe, batch, g = build("adu_depth", **cfg), fixed_batch(), torch.Generator().manual_seed(3)
    base = torch.linspace(5.0, 15.0, W).expand(B, 1, H, W) + rand(g, B, 1, H, W)
    shapes = [(B, 4, H // 2, W // 2), (B, 8, H // 4, W // 4)]
    s = {"depth": leaf(0.8 * base), "log_var": leaf(0.2 * torch.randn(B, 1, H, W, generator=g)),
         "features": [leaf(torch.randn(*sh, generator=g)) for sh in shapes]}
    scale = TEACHER_CHANGE if teacher_changed else 1.0
    t = {"depth": scale * base,
         "features": [scale * torch.randn(*sh, generator=g) for sh in shapes]}
    recipe.extras["adapters"] = nn.ModuleList([nn.Identity(), nn.Identity()])
    recipe.extras["restore"] = nn.ModuleList([nn.Identity(), nn.Identity()])
    recipe.teacher_output = lambda batch: t
    recipe.predict = lambda batch: s
    leaves = {"depth": s["depth"], "features0": s["features"][0], "features1": s["features"][1]}
    return Step(recipe.training_step(batch, 0), batch, s, t, leaves)


def test_adu_depth_loss_is_silog_plus_0p9_umr_plus_0p6_umf_plus_0p8_focal():
    """ADU-Depth eq. 9 (KITTI): L = L_b + 0.9 L_umr + 0.6 L_umf + 0.8 L_focal."""
    step = adu_step()
    s, t, gt = step.student, step.teacher, step.batch["depth_gt"]
    l_b = silog_loss(s["depth"], gt, gt > 1.0)  # NeWCRFs: GT > 1 m
    l_umr = umr_loss(t["depth"], s["depth"], s["log_var"])
    l_umf = umf_loss(t["features"], s["features"], s["log_var"])
    l_focal = focal_depth_loss(t["depth"], s["depth"], alpha=0.25, gamma=2.0)
    expected = l_b + 0.9 * l_umr + 0.6 * l_umf + 0.8 * l_focal
    assert_close(step.out["loss"].detach(), expected.detach())
    # p_d = 1 - |d_t - 0.8 d_t| / d_t = 0.8 in both images: -0.25 (1 - 0.8)^2 ln 0.8
    assert_close(step.out["focal"].detach(), torch.tensor(-0.25 * 0.2**2 * math.log(0.8)))
    assert step.out["umr"] > 0.5 and step.out["umf"] > 0.5


# ---------------------------------------------------------------------------------- X-Distill

D2S_W = torch.tensor([1.0, -1.0, 2.0, -2.0])  # the D2S stub: logit_k = w_k disp + b_k
D2S_B = torch.tensor([0.0, 0.5, -0.5, 0.0])
ROAD, SKY, CAR = 0, 10, 13  # Cityscapes trainIds -> X-Distill groups 3, 2, 1
XD_STEPS = 5  # a 5-step run: lambda_D2S = 0.005 * step / 4


class PoseStub(nn.Module):
    """Both source frames 5 cm to the side of the target frame."""

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> dict:
        T = torch.eye(4).repeat(target.shape[0], 1, 1)
        T[:, 0, 3] = 0.05
        return {"T": T}


def d2s_stub() -> nn.Conv2d:
    conv = nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.weight.copy_(D2S_W.view(4, 1, 1, 1))
        conv.bias.copy_(D2S_B)
    return conv


def teacher_ids(changed: bool) -> torch.Tensor:
    """(B, H, W) trainIds: road left, car right, sky on row 0; the changed teacher swaps sides."""
    ids = torch.full((B, H, W), ROAD)
    ids[..., W // 2:] = CAR
    if changed:
        ids = torch.where(ids == ROAD, CAR, ROAD)
    ids[:, 0] = SKY
    return ids


def x_distill_step(teacher_changed: bool = False, step: int = XD_STEPS - 1, **cfg) -> Step:
    """Student: Monodepth2 sigmoid disparities at 4 scales; teacher: one-hot class scores."""
    recipe = build("x_distill", **cfg)
    recipe.set_schedule(XD_STEPS, 1)
    batch, g = fixed_batch(), torch.Generator().manual_seed(5)
    s = {"sigmoid_disp": [leaf(0.05 + 0.1 * rand(g, B, 1, H >> k, W >> k)) for k in range(4)]}
    t = {"semantics": F.one_hot(teacher_ids(teacher_changed), 19).permute(0, 3, 1, 2).float()}
    recipe.extras["pose_net"], recipe.extras["d2s"] = PoseStub(), d2s_stub()
    recipe.teacher_output = lambda batch: t
    recipe.predict = lambda batch: s
    torch.manual_seed(1)  # auto-masking's tie-break noise, drawn again for the expected value
    out = recipe.training_step(batch, step)
    return Step(out, batch, s, t, {"disp0": s["sigmoid_disp"][0]})


@pytest.mark.parametrize("step,lam", [(0, 0.0), (2, 0.0025), (4, 0.005)])
def test_x_distill_loss_is_monodepth2_plus_ramped_lambda_times_d2s(step, lam):
    """X-Distill eq. 4: Monodepth2 loss + lambda_D2S L_D2S, lambda ramping 0 -> 0.005."""
    out = x_distill_step(step=step)
    s, batch = out.student, out.batch
    poses = [PoseStub()(batch["left"], src)["T"] for src in (batch["prev"], batch["next"])]
    torch.manual_seed(1)
    student_cfg = model_cfg("test_monodepth_student")
    monodepth2 = video_warp_loss(s, poses, [batch["prev"], batch["next"]], batch,
                                 student_cfg)["loss"]
    logits = D2S_W.view(1, 4, 1, 1) * s["sigmoid_disp"][0] + D2S_B.view(1, 4, 1, 1)
    l_d2s = d2s_loss(logits, teacher_ids(False))
    assert_close(out.out["loss"].detach(), (monodepth2 + lam * l_d2s).detach())
    assert_close(out.out["d2s_weight"], torch.tensor(lam))
    assert out.out["d2s"] > 0.5


# ---------------------------------------------------------------------------------- SDFA-Net

SDFA_STAGE2 = 25  # 50 one-step epochs: self-distillation from epoch 25 (METHODS §1.7)


def sdfa_step(teacher_changed: bool = False, step: int = SDFA_STAGE2, **cfg) -> Step:
    """Raw path (the "teacher"): the true 2 px disparity; distilled path: 2 / 1.2 px, i.e.
    1.2x the raw depth. The changed teacher's raw depth is 1.5x (masks come from disparities
    and stay the same), so the distilled depth now lies below its target instead of above."""
    recipe = build("sdfa_net", **cfg)
    recipe.set_schedule(50, 1)
    batch, g = fixed_batch(), torch.Generator().manual_seed(6)
    fb = FX * BASELINE
    raw_disp = SHIFT_PX + 0.1 * rand(g, B, 1, H, W)
    raw = {"disp_volume": leaf(torch.randn(B, 49, H, W, generator=g)), "disp": leaf(raw_disp),
           "depth": (TEACHER_CHANGE if teacher_changed else 1.0) * fb / raw_disp}
    dist = {"disp_volume": leaf(torch.randn(B, 49, H, W, generator=g)),
            "disp": leaf(raw_disp / 1.2), "depth": leaf(1.2 * fb / raw_disp)}

    def student_stub(left, right=None, *, path, flip_features=False, **context):
        assert flip_features == (path == "distilled")  # stage 2 runs on flipped features
        return dist if path == "distilled" else raw

    recipe.student.forward = student_stub
    out = recipe.training_step(batch, step)
    return Step(out, batch, dist, raw, {"depth_distilled": dist["depth"]})


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


# ---------------------------------------------------------------------------------- TIE-KD


def tiekd_centres() -> torch.Tensor:
    """METHODS §2: 257 bins, edges linspace(1e-3, 80, 258) m, centres at bin middles."""
    edges = torch.linspace(1e-3, 80.0, 258)
    return (edges[:-1] + edges[1:]) / 2


def tiekd_step(teacher_changed: bool = False, **cfg) -> Step:
    """Student: a DPM peaked near 12-22 m (depth = its expectation, eq. 3); teacher 8-20 m."""
    recipe, g = build("tie_kd", **cfg), torch.Generator().manual_seed(7)
    centres = tiekd_centres().view(1, -1, 1, 1)
    guess = torch.linspace(12.0, 22.0, W).expand(B, 1, H, W) + rand(g, B, 1, H, W)
    dpm = leaf(torch.softmax(-((centres - guess) / 3.0) ** 2, dim=1))
    s = {"dpm": dpm, "depth": (dpm * centres).sum(1, keepdim=True)}
    base = torch.linspace(8.0, 20.0, W).expand(B, 1, H, W) + 2 * rand(g, B, 1, H, W)
    t = {"depth": (TEACHER_CHANGE if teacher_changed else 1.0) * base}
    recipe.teacher_output = lambda batch: t
    recipe.predict = lambda batch: s
    batch = fixed_batch()
    return Step(recipe.training_step(batch, 0), batch, s, t, {"dpm": dpm})


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
    """recipe.confidence_weight (project option, off in the paper): the KL term becomes the
    confidence-weighted mean KL; the SSIM term is unchanged."""
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


# ---------------------------------------------------------------------------------- all five

STEPS: dict[str, Callable[..., Step]] = {
    "dacnn": dacnn_step, "adu_depth": adu_step, "x_distill": x_distill_step,
    "sdfa_net": sdfa_step, "tie_kd": tiekd_step,
}


@pytest.mark.parametrize("recipe", list(STEPS))
def test_student_gradient_depends_on_the_teacher(recipe):
    """The same student, taught by a teacher that says something else, is pushed elsewhere:
    through every KD channel (DACNN: depth and each guidance map; ADU: depth and features)."""
    before, after = grads(STEPS[recipe]()), grads(STEPS[recipe](teacher_changed=True))
    for name in before:
        assert not torch.allclose(before[name], after[name]), f"{recipe}: {name}"


KD_WEIGHTS = [  # recipe, config field, scalar of its term, the paper's weight
    ("dacnn", "w_proxy", "proxy", 0.01),
    ("dacnn", "w_guidance", "guidance", 1000.0),
    ("adu_depth", "w_umr", "umr", 0.9),
    ("adu_depth", "w_umf", "umf", 0.6),
    ("adu_depth", "w_focal", "focal", 0.8),
    ("x_distill", "d2s_final_weight", "d2s", 0.005),  # at the last step of the ramp
    ("sdfa_net", "w_sd", "sd", 0.01),
    ("sdfa_net", "w_smooth_distilled", "smooth_distilled", 0.0016),
]


@pytest.mark.parametrize("recipe,field,term,weight", KD_WEIGHTS)
def test_zeroing_a_kd_weight_removes_exactly_weight_times_its_term(recipe, field, term, weight):
    """The no-KD ablation by config is the paper's loss less w x term, a term > 0.
    (TIE-KD is all distillation: its alpha moves weight between two KD terms.)"""
    full, ablated = STEPS[recipe](), STEPS[recipe](**{field: 0.0})
    assert full.out[term] > 0
    expected = full.out["loss"] - weight * full.out[term]
    assert_close(ablated.out["loss"].detach(), expected.detach())
