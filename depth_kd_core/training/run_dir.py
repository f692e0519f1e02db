"""The run folder (``trainer.out_dir``): never mixed with, nor replacing, an earlier run.

A folder holds a run once it has any of :data:`RUN_MARKERS`. Training into it then needs
``--resume`` (continue that run) or ``--overwrite``, which moves the earlier run's files into
``replaced_<date>_<time>/`` inside the folder (nothing is deleted). Only the files a run writes
(:data:`RUN_FILES`) are moved, so a folder that also holds other things keeps them.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from depth_kd_core.errors import OutputError
from depth_kd_core.fileio import ensure_dir, remove_stale_temps

LOG = logging.getLogger(__name__)
RUN_FILES = ("config.yaml", "git_sha.txt", "metrics.json", "checkpoints", "tb")
RUN_MARKERS = ("config.yaml", "metrics.json", "checkpoints/*.pt")


def existing_run(out_dir: str | Path) -> list[str]:
    """Return the files (relative names) that show ``out_dir`` already holds a run; [] if none."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found: list[str] = []
    for marker in RUN_MARKERS:
        found += sorted(str(p.relative_to(out_dir)) for p in out_dir.glob(marker) if p.is_file())
    return found


def prepare_run_dir(out_dir: str | Path, resume: bool, overwrite: bool) -> list[Path]:
    """Make ``out_dir`` ready for a run; returns what was moved aside (``overwrite``).

    Raises:
        OutputError: the folder cannot be created or written (read-only mount, a file in the
            way), or it holds an earlier run and neither ``resume`` nor ``overwrite`` is set.
    """
    out_dir = ensure_dir(out_dir, "run folder (trainer.out_dir)")
    for name in ("config.yaml", "git_sha.txt", "metrics.json"):
        remove_stale_temps(out_dir, name)  # left by a killed earlier run
    found = existing_run(out_dir)
    if not found or resume:
        return []
    if not overwrite:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise OutputError(f"trainer.out_dir {out_dir} already holds a run ({shown}); continue it "
                          f"with --resume, choose another trainer.out_dir, or pass --overwrite "
                          f"to move the earlier run into {out_dir}/replaced_<time>/")
    aside = out_dir / time.strftime("replaced_%Y%m%d_%H%M%S")
    n = 1
    while aside.exists():
        aside, n = aside.with_name(f"{aside.name.split('.')[0]}.{n}"), n + 1
    aside.mkdir()
    moved = []
    for name in RUN_FILES:
        if (out_dir / name).exists():
            os.replace(out_dir / name, aside / name)
            moved.append(aside / name)
    LOG.warning("moved the earlier run in %s to %s", out_dir, aside)
    return moved
