"""Disk cache of teacher outputs, keyed by dataset index, so later epochs skip the teacher.

Only valid when a dataset item is the same every epoch (augmentations off); the trainer
enforces that. Cached keys are chosen by the recipe (depth maps, label maps — small ones).
"""

from __future__ import annotations

from pathlib import Path

import torch

from depth_kd_core.fileio import atomic_path


class TeacherCache:
    """get(indices) -> dict of batched tensors or None; put(indices, outputs)."""

    def __init__(self, folder: str | Path, keys: tuple[str, ...]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self.hits = self.misses = 0

    def _path(self, index: int) -> Path:
        return self.folder / f"{index:08d}.pt"

    def get(self, indices: torch.Tensor, device: torch.device) -> dict | None:
        paths = [self._path(int(i)) for i in indices]
        if not all(p.exists() for p in paths):
            self.misses += 1
            return None
        items = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
        self.hits += 1
        return {k: torch.stack([it[k] for it in items]).to(device) for k in self.keys}

    def put(self, indices: torch.Tensor, outputs: dict) -> None:
        for b, index in enumerate(indices):
            item = {k: outputs[k][b].detach().cpu() for k in self.keys}
            with atomic_path(self._path(int(index))) as tmp:
                torch.save(item, tmp)
