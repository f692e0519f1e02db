"""Wall-clock timing of repeated calls, shared by the benchmarks' tables.

One loop for every benchmark that times a call on the host clock: untimed warm-up calls first
(allocator, oneDNN and Triton caches), then each timed call on its own, bracketed by ``sync``
(``torch.cuda.synchronize`` on a GPU, so queued kernels are counted). The caller picks the
statistic: the median where a typical call matters, the minimum on a shared CPU, where
contention only ever adds time. CUDA-event timing (``benchmarks.kernels`` on a GPU) stays
with its caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wall_times(fn: Callable[..., Any], repeat: int, *, warmup: int = 1,
               sync: Callable[[], None] | None = None,
               prepare: Callable[[int], Any] | None = None) -> list[float]:
    """Seconds of each of ``repeat`` timed calls, after ``warmup`` untimed ones.

    fn() is called as is, or fn(prepare(i)) for call i (warm-ups included, counted from 0)
    when ``prepare`` builds its argument; prepare runs outside the timed span, as does the
    sync before it. ``sync`` is called before and after each timed call.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"wall_times: repeat must be >= 1 and warmup >= 0, got {repeat}, "
                         f"{warmup}")
    sync = sync or (lambda: None)
    times = []
    for i in range(warmup + repeat):
        args = () if prepare is None else (prepare(i),)
        if i < warmup:
            fn(*args)
            continue
        sync()
        start = time.perf_counter()
        fn(*args)
        sync()
        times.append(time.perf_counter() - start)
    return times
