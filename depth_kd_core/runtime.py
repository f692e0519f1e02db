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


def select_device(device: str | torch.device | None) -> torch.device:
    """None -> CUDA when available, else CPU; refuse a CUDA device that is not there."""
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device ('cpu', 'cuda', "
                          f"'cuda:1' ...)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this "
                          f"machine; use device='cpu' (or leave it empty to choose)")
    return dev


def auto_threads() -> int:
    """Half the CPU cores this process may use, at least 1 (leaves room for the neighbours a
    robot's computer always has: drivers, other nodes)."""
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
