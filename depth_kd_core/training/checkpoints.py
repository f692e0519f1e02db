"""Checkpoint rotation for a run folder: step files, ``last.pt``, ``best.pt``.

Also which complete checkpoint ``--resume`` continues from.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import torch

from depth_kd_core.checkpoint import load_checkpoint, save_checkpoint
from depth_kd_core.errors import CheckpointError
from depth_kd_core.fileio import atomic_path, ensure_dir, remove_stale_temps

LOG = logging.getLogger(__name__)
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointManager:
    """Rotates the checkpoints of a run folder: step files, ``last.pt`` and ``best.pt``.

    Writes ``checkpoints/step_XXXXXXXX.pt`` atomically, keeps the last N, and maintains
    ``last.pt`` (what ``--resume`` reads) and ``best.pt`` (best validation metric).

    Temporaries that a killed earlier writer left in ``checkpoints/`` are removed when the
    manager is created (see ``fileio.remove_stale_temps``).
    """

    def __init__(self, run_dir: str | Path, keep_last: int, best_key: str,
                 higher_is_better: bool, writer: bool = True) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        if writer:  # the main process; other DDP ranks only read
            ensure_dir(self.dir, "checkpoint folder")
            for name in ("step_*.pt", "last.pt", "best.pt"):
                remove_stale_temps(self.dir, name)
        self.keep_last = max(keep_last, 1)
        self.best_key, self.higher = best_key, higher_is_better
        self.best_value: float | None = None

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    def save(self, payload: dict, step: int) -> Path:
        path = save_checkpoint(self.dir / f"step_{step:08d}.pt", payload)
        with atomic_path(self.last) as tmp:
            shutil.copyfile(path, tmp)
        # rotate among this run's earlier steps only: a later-numbered file left by another run
        # in the same folder is neither counted nor deleted, and the new file always survives
        earlier = sorted(p for p in self.dir.glob("step_*.pt") if p.name < path.name)
        for old in earlier[:max(len(earlier) - (self.keep_last - 1), 0)]:
            old.unlink()
        value = payload.get("metrics", {}).get(self.best_key)
        if value is not None and self.is_better(value):
            self.best_value = value
            with atomic_path(self.best) as tmp:
                shutil.copyfile(path, tmp)
        return path

    def step_files(self) -> list[Path]:
        """``step_*.pt`` files, newest (highest step) first."""
        files = [p for p in self.dir.glob("step_*.pt") if STEP_FILE.match(p.name)]
        return sorted(files, key=lambda p: int(STEP_FILE.match(p.name).group(1)), reverse=True)

    def load_latest(self, map_location: str | torch.device = "cpu") -> tuple[Path, dict]:
        """Load the newest complete checkpoint of this folder: (path, checkpoint).

        ``last.pt`` when it is as new as the newest step file, else the newest readable step
        file (a kill while ``last.pt`` was being copied leaves the step file complete).

        Raises:
            CheckpointError: the folder holds no readable checkpoint.
        """
        candidates = self.step_files()
        newest = int(STEP_FILE.match(candidates[0].name).group(1)) if candidates else -1
        if self.last.is_file():
            candidates.insert(0, self.last)
        problems = []
        best: tuple[Path, dict] | None = None
        for path in candidates:
            try:
                ckpt = load_checkpoint(path, map_location)
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if best is None or int(ckpt.get("step", -1)) > int(best[1].get("step", -1)):
                best = (path, ckpt)
            if path != self.last or int(ckpt.get("step", -1)) >= newest:
                break  # step files come newest first: the first one read wins
        if best is None:
            why = f" ({'; '.join(problems)})" if problems else ""
            raise CheckpointError(f"no checkpoint to resume from in {self.dir}{why}; start the "
                                  f"run anew with --overwrite, or give --resume CKPT")
        if problems:
            LOG.warning("skipped unreadable checkpoints: %s", "; ".join(problems))
        return best

    def is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher else value < self.best_value


def check_resumable(path: Path, ckpt: dict, model_name: str, recipe: str, trainable: bool
                    ) -> None:
    """Raise CheckpointError unless ``ckpt`` (read from ``path``) can resume this run.

    It must be a training checkpoint of ``model_name`` trained by ``recipe``, with optimiser
    state when the run is ``trainable``.
    """
    got_recipe = ckpt.get("recipe", "?")
    if ckpt["model_name"] != model_name or got_recipe not in (recipe, "?"):
        raise CheckpointError(f"--resume: {path} holds model '{ckpt['model_name']}' of recipe "
                              f"'{got_recipe}', but this run trains '{model_name}' with "
                              f"recipe '{recipe}'; resume from this run's own "
                              f"checkpoints/last.pt, or start a new run without --resume")
    missing = [k for k in ("step", *(("optimizer", "scheduler") if trainable else ()))
               if k not in ckpt]
    if missing:
        raise CheckpointError(f"--resume: {path} has no training state ({', '.join(missing)}"
                              f" missing: an exported or inference-only checkpoint?); "
                              f"resume from a run's checkpoints/last.pt or step_*.pt, or "
                              f"start a new run")
