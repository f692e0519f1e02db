"""Checkpoint rotation for a run folder: step files, ``last.pt``, ``best.pt``."""

from __future__ import annotations

import shutil
from pathlib import Path

from depth_kd_core.checkpoint import save_checkpoint
from depth_kd_core.fileio import atomic_path


class CheckpointManager:
    """Writes ``checkpoints/step_XXXXXXXX.pt`` atomically, keeps the last N, and maintains
    ``last.pt`` (what ``--resume`` reads) and ``best.pt`` (best validation metric)."""

    def __init__(self, run_dir: str | Path, keep_last: int, best_key: str,
                 higher_is_better: bool) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.dir.mkdir(parents=True, exist_ok=True)
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

    def is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher else value < self.best_value
