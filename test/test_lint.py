"""The lint gate (issue 17): ``ruff check`` with the repository's ``ruff.toml`` finds nothing.

The counterpart of ament_flake8's ``test_flake8.py`` in ROS 2 packages (line length 99 as
there), plus import sorting and pydocstyle. ruff's report is the failure message; ``ruff check
--fix .`` repairs import order and docstring layout, the rest is fixed by hand.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def test_ruff_finds_nothing():
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]' (setup.py's test extra)",
                    pytrace=False)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(REPO_ROOT / "ruff.toml"), str(REPO_ROOT)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"ruff check found problems (exit {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}", pytrace=False)
