"""Choosing an implementation for a custom op: ``impl`` strings, Triton availability.

Every custom op in :mod:`depth_kd_core.kernels` takes ``impl`` in :data:`IMPLS`. Models store
that string in their config (typed as :data:`KernelImpl`) and pass it through unchanged, so a
run can force e.g. the PyTorch reference for debugging with ``model.kernel_impl=reference``.

The Triton kernel modules are imported lazily, only when a Triton implementation is requested:
``triton.jit`` decides at *definition* time whether a kernel is compiled for the GPU or run by
the CPU interpreter (``TRITON_INTERPRET=1``), so importing them early would freeze that choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType
from typing import Literal

import torch

KernelImpl = Literal["auto", "reference", "taps", "chunked", "triton"]
IMPLS: tuple[str, ...] = ("auto", "reference", "taps", "chunked", "triton")
# Dtypes the Triton kernels are written for (tl.dot on float64 is not supported everywhere).
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_impl(impl: str, allowed: tuple[str, ...] = IMPLS) -> None:
    """Raise ``ValueError`` unless ``impl`` is one of ``allowed``."""
    if impl not in allowed:
        raise ValueError(f"impl must be one of {list(allowed)}, got {impl!r}")


def triton_installed() -> bool:
    """Whether the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def triton_usable(*tensors: torch.Tensor) -> bool:
    """Whether ``impl="auto"`` may pick Triton: CUDA tensors of a supported dtype, triton there."""
    return (triton_installed() and all(t.is_cuda for t in tensors)
            and tensors[0].dtype in TRITON_DTYPES)


def interpreted() -> bool:
    """Whether ``triton.jit`` currently builds kernels for Triton's CPU interpreter."""
    import triton

    knobs = getattr(triton, "knobs", None)  # triton >= 3.4 reads the variable through knobs
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def load_triton_module(name: str, *tensors: torch.Tensor) -> ModuleType:
    """Import ``depth_kd_core.kernels.<name>`` and check it can run on ``tensors``.

    Args:
        name: module name of the Triton kernels (e.g. ``"depth_aware_conv_triton"``).
        tensors: the op's tensor arguments (device and dtype are checked).

    Raises:
        ValueError: triton is missing, the dtype is unsupported, or the tensors are on the CPU
            while the kernels were compiled for the GPU (set ``TRITON_INTERPRET=1`` before the
            first import to run them in Triton's CPU interpreter).
    """
    if not triton_installed():
        raise ValueError("impl='triton' needs the triton package; install it or use "
                         "impl='reference'/'chunked'")
    if tensors[0].dtype not in TRITON_DTYPES:
        raise ValueError(f"impl='triton' supports {[str(d) for d in TRITON_DTYPES]}, got "
                         f"{tensors[0].dtype}; use impl='reference' or 'chunked' for it")
    module = importlib.import_module(f"depth_kd_core.kernels.{name}")
    if not module.INTERPRETED and not all(t.is_cuda for t in tensors):
        raise ValueError("impl='triton' got CPU tensors but the Triton kernels were compiled for "
                         "CUDA; move the tensors to a GPU, or set TRITON_INTERPRET=1 before "
                         "depth_kd_core's Triton kernels are first imported")
    return module


def check_same_device(**tensors: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the tensors if they are not all on one device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"tensors must be on one device, got {listing}")
