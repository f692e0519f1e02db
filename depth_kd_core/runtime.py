"""Where inference runs: the torch device and the CPU thread counts of the process.

Devices are chosen here, once, by the tools and nodes (never inside helpers); threads are
set process-wide because torch's default (all cores) lets one busy neighbour stall every
OpenMP barrier (issue 14: 1771 ms per frame with 2 threads against 63 ms with 1).
"""

from __future__ import annotations

import os

import cv2
import torch

from depth_kd_core.errors import ConfigError

AUTO_DEVICES = (None, "", "auto")  # choose CUDA when present, else the CPU


def select_device(device: str | torch.device | None, local_rank: int | None = None,
                  key: str = "device") -> torch.device:
    """Pick a device: the one device picker of the tools, the trainer and the nodes.

    Args:
        device: None, "" or "auto" -> CUDA when available, else CPU; otherwise "cpu", "cuda",
            "cuda:N" or a ``torch.device``.
        local_rank: with auto, pick ``cuda:<local_rank>`` (a torchrun worker); None -> "cuda".
        key: the setting's name in error messages (``trainer.device``, ``eval.device``).

    Raises:
        ConfigError: naming ``key`` and the bad device string, for a string that is not a
            device, CUDA on a machine without it, a missing CUDA index, or another backend.
    """
    if device in AUTO_DEVICES:
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda" if local_rank is None else f"cuda:{local_rank}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"{key}={device!r} is not a torch device; use auto, cpu, cuda or "
                          f"cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}={device} but CUDA is not available on this machine; "
                          f"use {key}=cpu (or auto)")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"{key}={device} but this machine has {torch.cuda.device_count()} "
                          f"CUDA device(s); use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"{key}={device}: only cpu and cuda are supported")
    return dev


def auto_threads() -> int:
    """Return half the CPU cores this process may use, at least 1.

    This leaves room for the neighbours a robot's computer always has: drivers, other nodes.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


def set_cpu_threads(threads: int) -> int:
    """Set torch's intra-op and OpenCV's thread counts (process-wide); returns the count.

    Args:
        threads: >= 1, or 0 for :func:`auto_threads`.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads must be an integer >= 0 (0 = auto: half the cores), got "
                          f"{threads!r}")
    n = threads or auto_threads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n
