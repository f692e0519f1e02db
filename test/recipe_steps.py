"""Stubbed training steps of the five KD recipes (METHODS.md), shared by the specification tests.

Each builds a recipe with tiny networks, replaces its networks by stubs returning fixed
tensors, and runs one step on a fixed batch (see test_recipe_specs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from depth_kd_core.models.registry import model_cfg
from depth_kd_core.recipes.registry import create_recipe, default_models

from tiny import tiny

B, H, W = 2, 16, 32
FX, BASELINE = 20.0, 0.5  # fx * B = 10 pixel-metres
SHIFT_PX = 2  # the right view is the left one moved 2 px: true disparity 2 px everywhere
TEACHER_CHANGE = 1.5  # the changed teacher says every depth is 1.5x further
FAR_GT = 200.0  # metres: ground truth no network of the recipes can output (max 80 m)


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
    """B=2 random 16x32 views, 2 px stereo shift, 1 px motion; GT 4-12 m, row 0 void, row 1 far."""
    g = torch.Generator().manual_seed(15)
    left = torch.rand(B, 3, H, W, generator=g)
    K = torch.tensor([[FX, 0.0, W / 2], [0.0, FX, H / 2], [0.0, 0.0, 1.0]]).expand(B, 3, 3)
    depth_gt = torch.linspace(4.0, 12.0, W).expand(B, 1, H, W).clone()
    depth_gt[:, :, 0] = 0.0
    depth_gt[:, :, 1] = FAR_GT
    return {"left": left, "right": left.roll(-SHIFT_PX, dims=-1), "prev": left.roll(1, dims=-1),
            "next": left.roll(-1, dims=-1), "K": K.clone(), "baseline": torch.full((B,), BASELINE),
            "depth_gt": depth_gt}


def rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g)


def leaf(t: torch.Tensor) -> torch.Tensor:
    """Make a student output the gradient is taken against."""
    return t.detach().clone().requires_grad_()


def build(name: str, **cfg) -> nn.Module:
    """Build recipe ``name`` with tiny networks (stubbed later), paper defaults but for ``cfg``."""
    student, teacher = default_models(name)
    teacher_cfg = None if teacher is None else model_cfg(tiny(teacher))
    if name in ("x_distill", "selfsup_mono"):
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
    t = {"depth": scale * (base + 2 * rand(g, B, 1, H, W)),  # guidance: s + noise, KL ~ .01/pixel
         "guidance": [scale * (x.detach() + 0.2 * torch.randn(*x.shape, generator=g))
                      for x in s["guidance"]]}
    recipe.teacher_output = lambda batch: t
    recipe.predict = lambda batch: s
    leaves = {"depth": s["depth"], **{f"guidance{k}": x for k, x in enumerate(s["guidance"])}}
    return Step(recipe.training_step(batch, 0), batch, s, t, leaves)


# ---------------------------------------------------------------------------------- ADU-Depth


def adu_step(teacher_changed: bool = False, **cfg) -> Step:
    """Run one stubbed ADU step: student depth = 0.8 x the teacher's (so p_d = 0.8).

    2 feature levels; adapters and restoring blocks are identities, so L_umf compares the
    stubbed features directly.
    """
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


# ---------------------------------------------------------------------------------- SDFA-Net

SDFA_STAGE2 = 25  # 50 one-step epochs: self-distillation from epoch 25 (METHODS §1.7)


def sdfa_step(teacher_changed: bool = False, step: int = SDFA_STAGE2, **cfg) -> Step:
    """Run one stubbed SDFA-Net step: the distilled depth is 1.2x the raw (teacher) depth.

    Raw path (the "teacher"): the true 2 px disparity; distilled path: 2 / 1.2 px, i.e. 1.2x
    the raw depth. The changed teacher's raw depth is 1.5x (masks come from disparities and stay
    the same), so the distilled depth now lies below its target instead of above.
    """
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


# ---------------------------------------------------------------------------------- all five

STEPS: dict[str, Callable[..., Step]] = {
    "dacnn": dacnn_step, "adu_depth": adu_step, "x_distill": x_distill_step,
    "sdfa_net": sdfa_step, "tie_kd": tiekd_step,
}
