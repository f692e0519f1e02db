"""Train a teacher, a distilled student or a no-KD twin: ``python -m depth_kd_core.train``.

    python -m depth_kd_core.train --config config/tie_kd_quick.yaml trainer.max_steps=200
    python -m depth_kd_core.train --config config/dacnn_kitti.yaml --resume
    torchrun --nproc_per_node=2 -m depth_kd_core.train --config ... (DistributedDataParallel)

The loop is generic: the recipe named in the config (``recipe.name``) owns the networks and
the losses. Each run folder (``trainer.out_dir``) receives config.yaml, git_sha.txt,
checkpoints/ (step files, last.pt, best.pt), metrics.json and TensorBoard logs (tb/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from depth_kd_core.checkpoint import load_checkpoint
from depth_kd_core.cli import run_cli, setup_cli_logging
from depth_kd_core.config import dump_yaml, git_sha, save_run_config, to_dict
from depth_kd_core.data.datasets import SKIPPED_KEY, build_datasets, load_size
from depth_kd_core.errors import CheckpointError, DepthKDError
from depth_kd_core.fileio import atomic_write_text
from depth_kd_core.metrics import average_metrics
from depth_kd_core.recipes.registry import create_recipe, list_recipes
from depth_kd_core.training.checkpoints import CheckpointManager, check_resumable
from depth_kd_core.training.config import TrainConfig, load_train_config
from depth_kd_core.training.distributed import (
    init_distributed,
    rng_state,
    seed_everything,
    set_rng_state,
    shutdown_distributed,
)
from depth_kd_core.training.logging import Logger
from depth_kd_core.training.optim import build_optimizer, build_scheduler
from depth_kd_core.training.run_dir import prepare_run_dir
from depth_kd_core.training.sampling import EpochSampler, EpochSeededDataset
from depth_kd_core.training.visuals import validation_grid


def _to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4 and v.shape[1] == 3:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


class Trainer:
    """Builds everything from a TrainConfig and runs ``fit()``."""

    def __init__(self, cfg: TrainConfig, resume: str | None = None,
                 overwrite: bool = False) -> None:
        """Build the recipe, data, optimiser and run folder of a training run.

        Args:
            cfg: the merged training config.
            resume: "auto" (the run folder's newest complete checkpoint) or a checkpoint path.
            overwrite: train into a ``trainer.out_dir`` that holds an earlier run, moving that
                run into ``replaced_<time>/`` (see ``training.run_dir``); without it (or
                ``resume``) such a folder is refused.
        """
        self.cfg = cfg
        tcfg = cfg.trainer
        self.dist, self.device = init_distributed(tcfg.device)
        self.out_dir = Path(tcfg.out_dir)
        if self.dist.is_main:  # before anything is built: a refusal costs nothing
            prepare_run_dir(self.out_dir, bool(resume), overwrite)
        seed_everything(cfg.seed, tcfg.deterministic)  # same init on every rank
        self.recipe = create_recipe(cfg.recipe.name, cfg.recipe, model=cfg.model,
                                    teacher=cfg.teacher).to(self.device)
        cuda = self.device.type == "cuda"
        # NHWC convolutions: also 5-35 % faster training steps on a CPU (oneDNN), not only
        # on CUDA (benchmarks/train_steps.py)
        self.channels_last = tcfg.channels_last
        if self.channels_last:
            self.recipe.to(memory_format=torch.channels_last)
        self.amp = cuda and tcfg.amp
        if not cuda and tcfg.flush_denormal:
            torch.set_flush_denormal(True)  # process-wide; False where the CPU cannot
        self._build_data()
        self.total_steps = tcfg.max_steps or tcfg.epochs * self.steps_per_epoch
        self.recipe.set_schedule(self.total_steps, self.steps_per_epoch)
        params = self.recipe.trainable_parameters()
        self.optimizer = build_optimizer(params, cfg.optim) if params else None
        self.scheduler = (build_scheduler(self.optimizer, cfg.optim, self.total_steps,
                                          self.steps_per_epoch) if params else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.model = self.recipe
        if self.dist.enabled and params:
            self.model = DistributedDataParallel(
                self.recipe, device_ids=[self.device.index] if cuda else None,
                find_unused_parameters=tcfg.find_unused_parameters)
        self.step, self.metrics = 0, {}
        self.history: list[dict[str, float]] = []  # scalars of every step run by this process
        self.rig: dict[str, float] = {}  # training camera: focal (px at input size), baseline
        best_key, higher = self.recipe.BEST_METRIC
        self.ckpts = CheckpointManager(self.out_dir, tcfg.keep_last, best_key, higher,
                                       writer=self.dist.is_main)
        self.skipped_bad = 0  # items replaced under data.skip_bad_frames (training batches)
        self.logger = Logger(self.out_dir / "tb", tcfg.tensorboard and self.dist.is_main)
        if self.dist.is_main:
            save_run_config(cfg, self.out_dir)
        if resume:
            self._resume(resume)

    # ------------------------------------------------------------------ set-up

    def _build_data(self) -> None:
        cfg = self.cfg
        train_ds, val_ds = build_datasets(cfg.data, self.recipe.needs)
        self.train_set = EpochSeededDataset(train_ds, cfg.seed)
        self.sampler = EpochSampler(len(train_ds), cfg.data.batch_size, cfg.seed,
                                    rank=self.dist.rank, world_size=self.dist.world_size)
        self.steps_per_epoch = self.sampler.batches_per_epoch()
        if self.steps_per_epoch == 0:
            raise DepthKDError(f"the training set has {len(train_ds)} items, fewer than one "
                               f"batch of {cfg.data.batch_size} per process; lower "
                               f"data.batch_size or add data")
        # Own generators: a DataLoader draws a base seed for every new iterator, which would
        # otherwise shift the global RNG differently in a resumed run than in a straight one.
        workers = cfg.data.num_workers
        self.train_loader = DataLoader(self.train_set, batch_size=cfg.data.batch_size,
                                       sampler=self.sampler, num_workers=workers,
                                       pin_memory=self.device.type == "cuda", drop_last=True,
                                       persistent_workers=workers > 0,
                                       generator=torch.Generator().manual_seed(cfg.seed))
        self.val_loader = DataLoader(val_ds, batch_size=cfg.data.val_batch_size,
                                     num_workers=workers, persistent_workers=workers > 0,
                                     generator=torch.Generator().manual_seed(cfg.seed))

    def _resume(self, resume: str) -> None:
        if resume == "auto":
            path, ckpt = self.ckpts.load_latest(map_location=self.device)
        else:
            path = Path(resume)
            ckpt = load_checkpoint(path, map_location=self.device)
        check_resumable(path, ckpt, self.recipe.student.cfg.name, self.cfg.recipe.name,
                        self.optimizer is not None)
        try:
            self.recipe.student.load_state_dict(ckpt["state_dict"])
            self.recipe.extras.load_state_dict(ckpt.get("extra_state", {}))
            if self.optimizer is not None:
                self.optimizer.load_state_dict(ckpt["optimizer"])
                self.scheduler.load_state_dict(ckpt["scheduler"])
                self.scaler.load_state_dict(ckpt.get("scaler", {}))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"--resume: {path} does not fit this run's model or optimiser "
                                  f"(was the config changed?): {str(exc).splitlines()[0]}; "
                                  f"resume with the config the run started with") from exc
        self.step, self.metrics = int(ckpt["step"]), dict(ckpt.get("metrics", {}))
        self.skipped_bad = int(ckpt.get("skipped_bad", 0))
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"])
        best = ckpt.get("best_value")
        self.ckpts.best_value = float(best) if best is not None else None
        if self.dist.is_main:
            tqdm.write(f"[depth_kd] resumed from {path} at step {self.step}", file=sys.stderr)

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict:
        """Train (if the recipe trains), validate, checkpoint; returns the last metrics."""
        if self.optimizer is None or not self.recipe.TRAINABLE:
            metrics = self.validate()
            if self.dist.is_main:
                self.recipe.check_validation(metrics)
            self.metrics = metrics or {}
            self.save(rng=rng_state())
            self._finish()
            return self.metrics
        epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        bar = tqdm(total=self.total_steps, initial=self.step, desc=self.cfg.recipe.name,
                   disable=not (self.cfg.trainer.progress and self.dist.is_main),
                   dynamic_ncols=True)
        while self.step < self.total_steps:
            epoch, position = divmod(self.step, self.steps_per_epoch)
            self._train_epoch(epoch, position, bar)
            epoch_done = self.step % self.steps_per_epoch == 0
            last = self.step >= self.total_steps
            if last or (epoch_done and (epoch + 1) % self.cfg.trainer.val_every_epochs == 0):
                state = rng_state()
                self.metrics = self.validate(image=(epoch + 1) %
                                             self.cfg.trainer.image_every_epochs == 0) or \
                    self.metrics
                self.save(rng=state)
            elif epoch_done and not self.cfg.trainer.checkpoint_every_steps:
                self.save(rng=rng_state())
            if epoch + 1 >= epochs and not last:
                break
        bar.close()
        self._finish()
        return self.metrics

    def _train_epoch(self, epoch: int, position: int, bar: tqdm) -> None:
        self.sampler.set_epoch(epoch, position)
        self.recipe.train()
        every = self.cfg.trainer.checkpoint_every_steps
        for batch in self.train_loader:
            losses = self.train_step(batch)
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{self._lr():.2e}")
            if self.step % self.cfg.trainer.log_every == 0:
                self.logger.scalars("train", {**losses, "lr": self._lr()}, self.step)
            if every and self.step % every == 0 and self.step < self.total_steps:
                self.save(rng=rng_state())
            if self.step >= self.total_steps:
                break

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimiser step; returns the step's scalars as floats."""
        skipped = batch.pop(SKIPPED_KEY, None)
        if skipped is not None:
            self.skipped_bad += int(skipped.sum())
        if not self.rig:
            self.rig = {"focal_px": float(batch["K"][0, 0, 0])}
            if "baseline" in batch:
                self.rig["baseline_m"] = float(batch["baseline"][0])
        batch = _to_device(batch, self.device, self.channels_last)
        self.recipe.current_step = self.step
        with torch.autocast(self.device.type, enabled=self.amp):
            losses = self.model(batch, self.step)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise DepthKDError(f"non-finite loss {loss.item()} at step {self.step} "
                               f"({ {k: float(v) for k, v in losses.items()} })")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.recipe.trainable_parameters(),
                                           self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.recipe.current_step = self.step
        scalars = {k: float(v.detach()) if torch.is_tensor(v) else float(v)
                   for k, v in losses.items()}
        self.history.append(scalars)
        return scalars

    def _lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"] if self.optimizer else 0.0

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self, image: bool = True) -> dict[str, float] | None:
        """Metrics over the validation set (main process); logs an image grid."""
        if not self.dist.is_main:
            return None
        self.recipe.eval()
        scores, limit = [], self.cfg.trainer.max_val_batches
        for i, batch in enumerate(self.val_loader):
            if limit and i >= limit:
                break
            batch.pop(SKIPPED_KEY, None)
            batch = _to_device(batch, self.device, self.channels_last)
            out = self.recipe.predict(batch)
            m = self.recipe.validation_metrics(batch, out)
            if m is not None:
                scores.append(m)
            if i == 0 and image:
                self.logger.image("val/grid", validation_grid(self.recipe, batch, out),
                                  self.step)
        self.recipe.train()
        if not scores:
            return None
        metrics = average_metrics(scores)
        self.logger.scalars("val", metrics, self.step)
        atomic_write_text(self.out_dir / "metrics.json",
                          json.dumps({"step": self.step, **metrics}, indent=2) + "\n")
        return metrics

    # ------------------------------------------------------------------ saving

    def save(self, rng: dict) -> None:
        """Checkpoint on the main process (every rank holds identical weights under DDP)."""
        if not self.dist.is_main:
            return
        payload = {
            "model_name": self.recipe.student.cfg.name,
            "model_cfg": to_dict(self.deployment_cfg()),
            "state_dict": self.recipe.student.state_dict(),
            "extra_state": self.recipe.extras.state_dict(),
            "epoch": self.step // self.steps_per_epoch,
            "step": self.step,
            "config": to_dict(self.cfg),
            "git_sha": git_sha(),
            "metrics": dict(self.metrics),
            "rng": rng,
            "recipe": self.cfg.recipe.name,
            "skipped_bad": self.skipped_bad,
        }
        if self.optimizer is not None:
            payload.update(optimizer=self.optimizer.state_dict(),
                           scheduler=self.scheduler.state_dict(),
                           scaler=self.scaler.state_dict())
        value = self.metrics.get(self.ckpts.best_key)
        best = value if value is not None and self.ckpts.is_better(value) else \
            self.ckpts.best_value
        if best is not None:
            payload["best_value"] = float(best)
        self.ckpts.save(payload, self.step)

    def deployment_cfg(self):
        """Return the student's config as inference needs it: the recipe's export, completed.

        The training resolution and the training camera's focal length (and baseline) are
        filled in.
        """
        cfg = self.recipe.export_model_cfg()
        height, width = load_size(self.cfg.data)  # crop-trained: whole images at resize size
        changes = {"input_height": height, "input_width": width}
        if not self.rig:  # nothing trained in this process (sgbm, resumed at the end)
            batch = next(iter(self.val_loader))
            batch.pop(SKIPPED_KEY, None)
            self.rig = {"focal_px": float(batch["K"][0, 0, 0])}
            if "baseline" in batch:
                self.rig["baseline_m"] = float(batch["baseline"][0])
        # a crop keeps the focal length; resizing to (height, width) already scaled K
        changes.update({k: v for k, v in self.rig.items() if hasattr(cfg, k)})
        if any(getattr(cfg, k) != v for k, v in changes.items()):
            cfg = dataclasses.replace(cfg, **changes)
        return cfg

    def _finish(self) -> None:
        self.logger.close()
        if self.skipped_bad and self.dist.is_main:
            tqdm.write(f"[depth_kd] skipped {self.skipped_bad} bad training items "
                       f"(data.skip_bad_frames; each is named in a warning above)",
                       file=sys.stderr)
        shutdown_distributed()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m depth_kd_core.train",
        description="Train a depth teacher, a distilled student or a no-KD twin. The recipe "
                    "(recipe.name) picks the method; every value of the config can be "
                    "overridden as key=value.",
        epilog="recipes: " + ", ".join(list_recipes()) + ". Examples: "
               "--config config/tie_kd_quick.yaml trainer.max_steps=100 "
               "trainer.out_dir=runs/x | --config config/dacnn_kitti.yaml --resume",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="YAML config file (config/<recipe>_kitti.yaml, "
                                         "config/<recipe>_quick.yaml, or your own)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=1e-4 model.encoder=resnet18")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                        help="continue an interrupted run: from trainer.out_dir's "
                             "checkpoints/last.pt, or from CKPT")
    parser.add_argument("--overwrite", action="store_true",
                        help="train into a trainer.out_dir that holds an earlier run: that "
                             "run's files are moved into OUT_DIR/replaced_<time>/ (never "
                             "deleted); without this flag or --resume such a folder is refused")
    parser.add_argument("--print-config", action="store_true",
                        help="print the merged config and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: DEPTH_KD_DEBUG=1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the console entry point and return the exit status.

    2: a config, data or output problem, named in one line on stderr.
    """
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), debug=args.debug, prog="depth_kd_core.train")


def _main(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise DepthKDError("--resume continues the run in trainer.out_dir and --overwrite moves "
                           "it aside; give one of them")
    cfg = load_train_config(args.config, args.overrides)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    setup_cli_logging()
    start = time.time()
    metrics = Trainer(cfg, resume=args.resume, overwrite=args.overwrite).fit()
    summary = ", ".join(f"{k}={v:.4f}" for k, v in list(metrics.items())[:6])
    print(f"done in {time.time() - start:.0f}s: {cfg.trainer.out_dir} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
