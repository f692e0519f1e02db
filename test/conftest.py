"""Shared test fixtures: real-data location, device helpers, small synthetic batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/realdata beside the checkout (CI has it; users' clones usually do not).
REALDATA = Path(os.environ.get("DEPTH_KD_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))


def realdata_path(*parts: str) -> Path:
    """Path under ../shared/realdata, or skip the test with the reason."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (see ../shared/realdata/README.md)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason="needs a CUDA GPU; none is present on this machine")
