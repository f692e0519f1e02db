"""Per-node frame statistics for diagnostics (rate, latency, dropped frames) and a log throttle.

Both are ROS-free. The rclpy nodes hand :meth:`FrameStats.summary` to ``diagnostic_updater``.

Levels follow ``diagnostic_msgs/DiagnosticStatus``: OK = 0, WARN = 1, ERROR = 2.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

OK, WARN, ERROR = 0, 1, 2
LOG_REPEAT_S = 5.0  # the same kind of log line at most this often (a bad camera floods)
MAX_LOG_KEYS = 64  # throttle/once state kept for at most this many kinds (least recent dropped)
_NUMBER = re.compile(r"\d+(\.\d+)?")


def fault_kind(text: str) -> str:
    """Return a log line's kind: its text with every number replaced by '#'.

    Stamps, sizes and counts differ from frame to frame; the fault does not.
    """
    return _NUMBER.sub("#", text)[:200]


class Logger(Protocol):
    """What the cores log through: rclpy's node logger or a ``logging.Logger``."""

    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...

    def error(self, msg: str) -> Any: ...


@dataclass
class DiagnosticSummary:
    """One diagnostic status: level (OK/WARN/ERROR), message and key/value strings."""

    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


class ThrottledLog:
    """Logs a line unless a line of the same kind was logged less than ``LOG_REPEAT_S`` ago.

    The kind is the caller's ``key`` or :func:`fault_kind` of the text, so frames that fail
    the same way with different stamps share one throttle; the next line of a kind says how
    many were suppressed. State is bounded (``MAX_LOG_KEYS`` kinds, least recent forgotten),
    so a camera that sends bad frames forever costs constant memory and ~1 line / 5 s / kind.
    """

    def __init__(self, log: Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.clock = log, clock
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()  # kind -> (t, hidden)
        self._once: OrderedDict[str, None] = OrderedDict()

    def __call__(self, level: str, text: str, key: str | None = None) -> bool:
        """Log ``text`` at ``level`` ("info", "warning", "error"); True if it was logged."""
        kind = key if key is not None else fault_kind(text)
        now = self.clock()
        last, hidden = self._last.get(kind, (-np.inf, 0))
        if now - last < LOG_REPEAT_S:
            self._last[kind] = (last, hidden + 1)
            return False
        self._remember(self._last, kind, (now, 0))
        self._emit(level, text + (f" ({hidden} more like this suppressed)" if hidden else ""))
        return True

    def once(self, level: str, text: str) -> bool:
        """Log ``text`` the first time only (configuration notes)."""
        if text in self._once:
            return False
        self._remember(self._once, text, None)
        self._emit(level, text)
        return True

    @staticmethod
    def _remember(table: OrderedDict, key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > MAX_LOG_KEYS:
            table.popitem(last=False)

    def _emit(self, level: str, text: str) -> None:
        # One call site per severity: rclpy's logger refuses a call site whose severity
        # changes between calls ("Logger severity cannot be changed between calls").
        if level == "error":
            self.log.error(text)
        elif level == "warning":
            self.log.warning(text)
        else:
            self.log.info(text)


def stamp_age_ms(stamp: int, now_ns: int | None, log: ThrottledLog, what: str
                 ) -> float | None:
    """Return the stamp-to-publish age of ``what`` in ms (None without ``now_ns``).

    An unstamped one (stamp 0) gets a throttled warning and None, so it cannot skew the age
    statistics.
    """
    if stamp == 0:
        log("warning", f"{what} has header stamp 0 (the driver does not stamp images): "
                       f"published with stamp 0, its age is not measured", key="zero stamp")
        return None
    return (now_ns - stamp) / 1e6 if now_ns is not None else None


class FrameStats:
    """Counts and rolling timings of a node's frames.

    Args:
        window: frames over which rate and latencies are averaged.
        clock: monotonic clock in seconds (injected by tests).
    """

    def __init__(self, window: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.clock = window, clock
        self.processed = self.dropped = self.skipped = 0
        self.last_error = ""
        self._done: deque[float] = deque(maxlen=window)
        self._latency: deque[float] = deque(maxlen=window)
        self._inference: deque[float] = deque(maxlen=window)
        self._age: deque[float] = deque(maxlen=window)
        self._drops: deque[float] = deque(maxlen=window)

    def record(self, latency_ms: float, inference_ms: float, age_ms: float | None = None
               ) -> None:
        """Count a processed frame: callback latency, inference time, stamp-to-publish age."""
        self.processed += 1
        self._done.append(self.clock())
        self._latency.append(latency_ms)
        self._inference.append(inference_ms)
        if age_ms is not None:
            self._age.append(age_ms)

    def drop(self, reason: str) -> None:
        """Count a bad frame, logged and dropped."""
        self.dropped += 1
        self.last_error = reason
        self._drops.append(self.clock())

    def skip(self) -> None:
        """Count a frame not processed because nobody subscribes to the outputs."""
        self.skipped += 1

    def rate_hz(self) -> float:
        """Return the processed frames per second over the window (0 with fewer than 2)."""
        if len(self._done) < 2 or self._done[-1] <= self._done[0]:
            return 0.0
        return (len(self._done) - 1) / (self._done[-1] - self._done[0])

    def recent_drops(self, horizon_s: float) -> int:
        """Frames dropped in the last ``horizon_s`` seconds."""
        now = self.clock()
        return sum(1 for t in self._drops if now - t <= horizon_s)

    def summary(self, name: str, horizon_s: float = 10.0) -> DiagnosticSummary:
        """Diagnostic status: WARN on recent drops or before the first frame, else OK."""
        mean = lambda q: float(np.mean(q)) if q else float("nan")  # noqa: E731
        values = {"rate_hz": f"{self.rate_hz():.2f}",
                  "latency_ms_mean": f"{mean(self._latency):.1f}",
                  "latency_ms_max": f"{max(self._latency, default=float('nan')):.1f}",
                  "inference_ms_mean": f"{mean(self._inference):.1f}",
                  "stamp_age_ms_mean": f"{mean(self._age):.1f}",
                  "frames_processed": str(self.processed),
                  "frames_dropped": str(self.dropped),
                  "frames_skipped_no_subscriber": str(self.skipped),
                  "last_error": self.last_error}
        recent = self.recent_drops(horizon_s)
        if recent:
            return DiagnosticSummary(WARN, f"{name}: {recent} bad frame(s) dropped in the last "
                                           f"{horizon_s:g} s: {self.last_error}", values)
        if self.processed == 0:
            text = "idle: no subscriber" if self.skipped else "waiting for images"
            return DiagnosticSummary(OK if self.skipped else WARN, f"{name}: {text}", values)
        return DiagnosticSummary(OK, f"{name}: {self.rate_hz():.1f} Hz, "
                                     f"{mean(self._latency):.0f} ms", values)
