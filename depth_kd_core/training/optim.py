"""Optimisers and per-iteration learning-rate schedules from ``OptimCfg``."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from depth_kd_core.training.config import OptimCfg


def build_optimizer(params, cfg: OptimCfg) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas,
                                 weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimCfg, total_steps: int,
                    steps_per_epoch: int) -> LRScheduler:
    """Build a scheduler stepped once per optimiser step; ``steps_per_epoch`` converts epochs."""
    total = max(total_steps, 1)
    if cfg.schedule == "onecycle":
        return OneCycleLR(opt, max_lr=cfg.lr, total_steps=total + 1, pct_start=cfg.onecycle_pct,
                          div_factor=cfg.onecycle_div, final_div_factor=cfg.onecycle_final_div)
    if cfg.schedule == "poly":
        floor = cfg.min_lr_ratio

        def factor(step: int) -> float:
            return floor + (1 - floor) * (1 - min(step, total) / total) ** cfg.poly_power
    elif cfg.schedule == "step":
        def factor(step: int) -> float:
            return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
    elif cfg.schedule == "multistep":
        bounds = [m * steps_per_epoch for m in cfg.milestones]

        def factor(step: int) -> float:
            return cfg.gamma ** sum(step >= b for b in bounds)
    else:
        def factor(step: int) -> float:
            return 1.0
    return LambdaLR(opt, factor)
