"""``python -m depth_kd_core.train`` with the tiny ``test_*`` models registered.

For tests that run the trainer in a process of its own (to kill it mid-run).

    python test/helpers/train_tiny.py key=value ...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test/, where tiny.py lives
from depth_kd_core.train import main  # noqa: E402

import tiny  # noqa: E402, F401 - registers the test_* models

if __name__ == "__main__":
    sys.exit(main())
