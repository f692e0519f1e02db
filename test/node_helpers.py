"""Stand-ins the node-core tests share: a settable clock and an rclpy-like logger."""

from __future__ import annotations

import inspect


class FakeClock:
    """``clock()`` returns ``clock.t`` seconds; tests move ``t`` by hand."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


class StubLogger:
    """Counts lines per severity and enforces rclpy's rule: one severity per calling line.

    ``keep_lines`` records (severity, text) pairs; soak tests leave it off so the logger
    itself does not grow. ``last`` is the newest text either way.
    """

    def __init__(self, keep_lines: bool = True) -> None:
        self.keep_lines = keep_lines
        self.count = {"info": 0, "warning": 0, "error": 0}
        self.last = ""
        self.lines: list[tuple[str, str]] = []
        self.sites: dict[tuple[str, int], str] = {}

    def _log(self, severity: str, text: str) -> None:
        caller = inspect.currentframe().f_back.f_back
        site = (caller.f_code.co_filename, caller.f_lineno)
        if self.sites.setdefault(site, severity) != severity:
            raise ValueError("Logger severity cannot be changed between calls.")
        self.count[severity] += 1
        self.last = text
        if self.keep_lines:
            self.lines.append((severity, text))

    def info(self, text: str) -> None:
        self._log("info", text)

    def warning(self, text: str) -> None:
        self._log("warning", text)

    def error(self, text: str) -> None:
        self._log("error", text)
