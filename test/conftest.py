"""Shared test fixtures: real-data location, device helpers, small synthetic batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton kernels run in Triton's CPU interpreter where there is no GPU (STYLE rule 9). triton.jit
# reads TRITON_INTERPRET when a kernel is defined, and depth_kd_core imports its Triton modules
# lazily, so setting it here (before any test runs) is early enough; on a GPU it stays unset.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import tiny  # noqa: E402, F401 - registers the test_* models before any test is collected

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/realdata beside the checkout (CI has it; users' clones usually do not).
REALDATA = Path(os.environ.get("DEPTH_KD_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))


def realdata_path(*parts: str) -> Path:
    """Path under ../shared/realdata, or skip the test with the reason."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent "
                    f"(see ../shared/realdata/README.md)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason="needs a CUDA GPU; none is present on this machine")
