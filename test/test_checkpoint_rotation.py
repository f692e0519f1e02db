"""Checkpoint rotation: keep the last N of this run, never lose the file just written."""

import torch

from depth_kd_core.checkpoint import load_checkpoint
from depth_kd_core.training.checkpoints import CheckpointManager


def _payload(step: int) -> dict:
    return {"model_name": "m", "model_cfg": {}, "state_dict": {}, "step": step,
            "marker": torch.tensor([step])}


def _steps(run_dir) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt"))


def test_keeps_the_newest_n_steps_and_points_last_at_the_newest(tmp_path):
    ckpts = CheckpointManager(tmp_path, keep_last=2, best_key="abs_rel", higher_is_better=False)
    for step in (10, 20, 30):
        ckpts.save(_payload(step), step)
    assert _steps(tmp_path) == ["step_00000020.pt", "step_00000030.pt"]
    assert load_checkpoint(ckpts.last)["marker"].item() == 30


def test_a_new_run_in_a_folder_with_a_later_stale_step_keeps_its_own_checkpoint(tmp_path):
    CheckpointManager(tmp_path, 1, "abs_rel", False).save(_payload(40), 40)  # an earlier run
    ckpts = CheckpointManager(tmp_path, 1, "abs_rel", False)
    ckpts.save(_payload(4), 4)
    ckpts.save(_payload(8), 8)
    assert "step_00000008.pt" in _steps(tmp_path)
    assert "step_00000004.pt" not in _steps(tmp_path)
    assert "step_00000040.pt" in _steps(tmp_path)  # not ours to delete
    assert load_checkpoint(ckpts.last)["marker"].item() == 8
