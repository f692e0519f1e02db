"""Run one training under torchrun and record a digest of this rank's student weights.

Usage::

    torchrun --nproc_per_node=2 test/helpers/ddp_worker.py key=value ...
"""

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test/, where tiny.py lives
from depth_kd_core.train import Trainer  # noqa: E402
from depth_kd_core.training.config import load_train_config  # noqa: E402

import tiny  # noqa: E402, F401 - registers the test_* models the overrides name


def main() -> None:
    cfg = load_train_config(None, sys.argv[1:])
    trainer = Trainer(cfg)
    trainer.fit()
    digest = hashlib.sha256()
    for name, tensor in sorted(trainer.recipe.student.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    rank = os.environ.get("RANK", "0")
    Path(cfg.trainer.out_dir, f"rank{rank}.sha256").write_text(digest.hexdigest())


if __name__ == "__main__":
    main()
