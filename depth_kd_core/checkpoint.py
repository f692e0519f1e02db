"""Checkpoints: one format for training, resuming, teachers and inference.

A checkpoint is a plain dict that loads with ``torch.load(weights_only=True)`` (tensors,
numbers, strings, lists and dicts only — no pickled objects):

    format_version  int, CHECKPOINT_FORMAT_VERSION
    model_name      registry name of the deployed network (the student)
    model_cfg       its ModelCfg as a plain dict
    state_dict      its weights
    optimizer, scheduler, scaler   training state (absent in exported files)
    epoch, step     progress counters
    config          the whole training config as a plain dict
    git_sha         code version that wrote it
    metrics         validation metrics at save time
    extra_state     recipe-owned trainable helpers (pose net, adapters, D2S net …)
    rng             random-generator states for exact resumption

``DepthEstimator`` needs only the first four keys. Files are written atomically. The network is
rebuilt from a checkpoint by ``models.registry.model_from_checkpoint``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from depth_kd_core.errors import CheckpointError
from depth_kd_core.fileio import atomic_path

CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_cfg", "state_dict")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (see module docstring) to ``path``."""
    payload = {"format_version": CHECKPOINT_FORMAT_VERSION, **payload}
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint for {path} lacks required keys {missing}")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint (weights only; never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a depth_kd checkpoint (got {type(ckpt).__name__})")
    check_record(ckpt, REQUIRED_KEYS, CHECKPOINT_FORMAT_VERSION, str(path),
                 "depth_kd checkpoint")
    return ckpt


def check_record(record: dict, required: tuple[str, ...], newest: int, where: str,
                 what: str) -> None:
    """Raise CheckpointError unless ``record`` has every ``required`` key and a known version.

    ``record`` is a checkpoint or an export's metadata; its ``format_version`` must be one this
    code reads (<= ``newest``). ``where``: the file, ``what``: the kind of record, both named in
    the error.
    """
    missing = [k for k in required if k not in record]
    if missing:
        raise CheckpointError(f"{where}: {what} lacks {', '.join(missing)}")
    if record["format_version"] > newest:
        raise CheckpointError(f"{where}: {what} format_version {record['format_version']} is "
                              f"newer than this code ({newest}); update depth_kd")
