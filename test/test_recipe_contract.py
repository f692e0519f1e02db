"""What every KD recipe promises.

The student's gradient depends on what the teacher says, zeroing a KD weight in the config (the
no-KD ablation) removes exactly that weighted term, and the batch keys a recipe asks the data for
follow its teachers' declared inputs. Networks are stubs (recipe_steps).
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from depth_kd_core.errors import ConfigError
from depth_kd_core.models.registry import model_cfg
from depth_kd_core.recipes.registry import create_recipe

from inference_helpers import torch_single_thread  # noqa: F401 - module fixture
from recipe_steps import STEPS, grads

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("recipe", list(STEPS))
def test_student_gradient_depends_on_the_teacher(recipe):
    """The same student, taught by a teacher that says something else, is pushed elsewhere.

    This holds through every KD channel (DACNN: depth and each guidance map; ADU: depth and
    features).
    """
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

    (TIE-KD is all distillation: its alpha moves weight between two KD terms.)
    """
    full, ablated = STEPS[recipe](), STEPS[recipe](**{field: 0.0})
    assert full.out[term] > 0
    expected = full.out["loss"] - weight * full.out[term]
    assert_close(ablated.out["loss"].detach(), expected.detach())


def test_batch_needs_follow_the_teachers_declared_inputs():
    """A recipe's batch keys follow its teachers' declared inputs, whatever a teacher's name.

    A stereo teacher adds "right", a teacher's declared batch_keys add themselves (the
    precomputed teacher's "teacher_depth"): read from its config.
    """
    student = model_cfg("test_tiekd_student")
    precomputed = create_recipe("tie_kd", model=student,
                                teacher=model_cfg("test_precomputed_teacher"))
    assert precomputed.needs == {"teacher_depth"}
    stereo = create_recipe("tie_kd", model=student, teacher=model_cfg("test_sgbm_teacher"))
    assert stereo.needs == {"right"}


def test_tie_kd_refuses_a_student_without_a_depth_probability_map():
    """The regression head is TIE-KD's no-KD baseline; its KD loss needs the student's DPM."""
    baseline = model_cfg("test_tiekd_student", head="regression")
    with pytest.raises(ConfigError, match="model.head=regression is the no-KD baseline"):
        create_recipe("tie_kd", model=baseline, teacher=model_cfg("test_sgbm_teacher"))
    create_recipe("tie_kd", model=model_cfg("test_tiekd_student"),
                  teacher=model_cfg("test_sgbm_teacher"))  # the DPM student is taken
