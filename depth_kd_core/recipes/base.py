"""The recipe contract: a student, frozen teachers, trainable helpers, and one training step.

A recipe composes shared models and losses into one method. The trainer knows nothing
method-specific: it calls ``recipe(batch, step)`` (= ``training_step``) and
``recipe.predict(batch)``, and saves ``recipe.student`` with ``recipe.export_model_cfg()``.

- ``student``: the network that is deployed (saved as the checkpoint's model).
- ``teachers``: ModuleDict of frozen networks (eval mode, no grad, never unfrozen).
- ``extras``: ModuleDict of trainable helpers used only for training (pose net, D2S net,
  attention adapters …); saved in the checkpoint's ``extra_state`` for resumption.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from depth_kd_core.data.schema import require_keys
from depth_kd_core.errors import ConfigError
from depth_kd_core.models.base import ModelCfg, freeze
from depth_kd_core.models.registry import create_model, model_cfg, model_from_checkpoint
from depth_kd_core.recipes.validation import depth_validation

LOG = logging.getLogger(__name__)


@dataclass
class RecipeCfg:
    """Fields every recipe has.

    Attributes:
        name: registry name.
        teacher_checkpoint: trained teacher for KD recipes (a checkpoint written by a teacher
            recipe); empty for recipes without a network teacher.
        untrained_teacher_ok: allow a randomly initialised teacher when no checkpoint is
            given (tests only: distilling from noise teaches nothing).
    """

    name: str = ""
    teacher_checkpoint: str = ""
    untrained_teacher_ok: bool = False


class Recipe(nn.Module):
    """Base class; subclasses set the class attributes and implement ``training_step``."""

    DEFAULT_STUDENT: str = ""
    DEFAULT_TEACHER: str | None = None  # registry name; None = no network teacher
    NEEDS: frozenset[str] = frozenset()  # batch keys the step reads besides left and K
    BEST_METRIC: tuple[str, bool] = ("abs_rel", False)  # (key, higher is better)
    TRAINABLE: bool = True  # False: nothing to optimise (classical teachers)
    # Teacher output keys the training step reads (model-output contract, models/base.py).
    # None: those of the default teacher's kind ("semantics" for a segmentation teacher, else
    # "depth"); a recipe that reads more (guidance, features) lists them all.
    TEACHER_OUTPUTS: frozenset[str] | None = None

    def __init__(self, cfg: RecipeCfg, model_cfg_: ModelCfg | None = None,
                 teacher_cfg: ModelCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        student_cfg = model_cfg_ or model_cfg(self.DEFAULT_STUDENT)
        self.student = create_model(student_cfg.name, student_cfg)
        self.teachers = nn.ModuleDict()
        self.extras = nn.ModuleDict()
        self.total_steps = 1
        self.steps_per_epoch = 1
        self.current_step = 0  # kept up to date by the trainer (stage switches, ramps)
        if self.DEFAULT_TEACHER is not None:
            self.teachers["teacher"] = self.load_teacher(teacher_cfg)

    # ------------------------------------------------------------------ building

    def load_teacher(self, teacher_cfg: ModelCfg | None) -> nn.Module:
        """Load the frozen teacher: from ``cfg.teacher_checkpoint``, else built untrained."""
        if self.cfg.teacher_checkpoint:
            teacher, _ = model_from_checkpoint(self.cfg.teacher_checkpoint)
            self.check_teacher_outputs(teacher, f"recipe.teacher_checkpoint "
                                                f"{self.cfg.teacher_checkpoint}")
        else:
            cfg = teacher_cfg or model_cfg(self.DEFAULT_TEACHER)
            needs_weights = any(True for _ in create_model(cfg.name, cfg).parameters())
            if needs_weights and not self.cfg.untrained_teacher_ok:
                raise ConfigError(
                    f"recipe '{self.cfg.name}' distils from teacher '{cfg.name}', which needs "
                    f"trained weights: set recipe.teacher_checkpoint=PATH (train one with a "
                    f"teacher recipe, e.g. config/stereo_supervised_quick.yaml)")
            teacher = create_model(cfg.name, cfg)
        return freeze(teacher)

    def required_teacher_outputs(self) -> frozenset[str]:
        """Return the teacher output keys this recipe's training step reads."""
        if self.TEACHER_OUTPUTS is not None:
            return frozenset(self.TEACHER_OUTPUTS)
        kind = model_cfg(self.DEFAULT_TEACHER).output_kind
        return frozenset({"semantics" if kind == "semantics" else "depth"})

    @torch.no_grad()
    def check_teacher_outputs(self, teacher: nn.Module, source: str) -> None:
        """Fail now, naming ``source``, if ``teacher`` lacks outputs the step reads.

        For example a student or a segmentation net given where a depth teacher is expected.
        The outputs are those of one forward pass on a small blank input (CPU, batch 1).
        """
        cfg = teacher.cfg
        side = 2 * max(int(cfg.size_multiple), 32)
        x = torch.zeros(1, 3, side, side)
        context = {"K": torch.tensor([[[side, 0.0, side / 2], [0.0, side, side / 2],
                                       [0.0, 0.0, 1.0]]]),
                   "baseline": torch.tensor([0.54]), "teacher_depth": torch.ones(1, 1, side, side)}
        training = teacher.training
        teacher.eval()  # no batch-norm statistics touched, no random draws
        try:
            out = teacher(x, x if cfg.stereo_input else None, **context)
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run proves nothing
            LOG.warning("could not check the outputs of teacher '%s' from %s on a blank "
                        "input (%s); continuing", cfg.name, source, exc)
            return
        finally:
            teacher.train(training)
        missing = sorted(self.required_teacher_outputs() - set(out))
        if missing:
            raise ConfigError(
                f"{source} holds '{cfg.name}' ({cfg.output_kind}), which outputs "
                f"{sorted(out)} but not {missing}, which recipe '{self.cfg.name}' distils from; "
                f"give a checkpoint of a '{self.DEFAULT_TEACHER}' (or another model with those "
                f"outputs) trained by a teacher recipe")

    @property
    def teacher(self) -> nn.Module:
        return self.teachers["teacher"]

    @property
    def needs(self) -> set[str]:
        """Batch keys this recipe reads (the data builder must provide them)."""
        needs = set(self.NEEDS)
        for t in self.teachers.values():
            if t.cfg.stereo_input:
                needs.add("right")
            needs |= t.cfg.batch_keys
        return needs

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Student and helper parameters (teachers are frozen)."""
        params = list(self.student.parameters()) + list(self.extras.parameters())
        return [p for p in params if p.requires_grad]

    def set_schedule(self, total_steps: int, steps_per_epoch: int) -> None:
        """Told once by the trainer, for loss-weight ramps and stage switches."""
        self.total_steps, self.steps_per_epoch = max(total_steps, 1), max(steps_per_epoch, 1)

    def export_model_cfg(self) -> ModelCfg:
        """Return the student's config as it should be deployed (a recipe may adjust it)."""
        return self.student.cfg

    # ------------------------------------------------------------------ running

    def check_batch(self, batch: dict) -> None:
        require_keys(batch, {"left", "K", *self.needs}, f"recipe '{self.cfg.name}'")

    def forward(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """= training_step, so DistributedDataParallel can wrap the whole recipe."""
        return self.training_step(batch, step)

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """One step's losses: {"loss": scalar tensor to minimise, **scalars for logging}."""
        raise NotImplementedError

    @torch.no_grad()
    def teacher_output(self, batch: dict) -> dict[str, Any]:
        """Return the teacher's prediction for a batch (no grad)."""
        teacher = self.teacher
        right = batch.get("right") if teacher.cfg.stereo_input else None
        return teacher(batch["left"], right, K=batch.get("K"), baseline=batch.get("baseline"),
                       teacher_depth=batch.get("teacher_depth"))

    def predict(self, batch: dict) -> dict[str, Any]:
        """Return the student's output used for validation and inference."""
        return self.student(batch["left"], K=batch.get("K"), baseline=batch.get("baseline"))

    def validation_metrics(self, batch: dict, out: dict) -> dict[str, float] | None:
        """Metrics of one validation batch (depth metrics by default); None = nothing to score."""
        return depth_validation(self, batch, out)

    def check_validation(self, metrics: dict[str, float] | None) -> None:
        """Raise if a recipe with nothing to train validated to nothing.

        Classical teachers override it; ``metrics`` is the averaged validation result or None.
        """

    def describe(self) -> str:
        fields = {f.name: getattr(self.cfg, f.name) for f in dataclasses.fields(self.cfg)}
        return f"{type(self).__name__}({fields})"
