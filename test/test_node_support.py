"""Frame statistics and log throttling of the node cores.

Rates and latencies by hand, drops age out of the warning, repeated lines are throttled, and
every severity has its own call site (rclpy's logger raises when one call site changes
severity).
"""

from __future__ import annotations

import pytest

from depth_kd_ros.frame_stats import (
    LOG_REPEAT_S,
    MAX_LOG_KEYS,
    OK,
    WARN,
    FrameStats,
    ThrottledLog,
    fault_kind,
)

from node_helpers import FakeClock, StubLogger


def test_rate_latency_and_drop_window():
    clock = FakeClock()
    stats = FrameStats(window=4, clock=clock)
    assert stats.summary("x").level == WARN  # nothing yet
    for k in range(6):  # 20 Hz, latencies 10..60 ms
        clock.t = 0.05 * k
        stats.record(10.0 * (k + 1), 5.0, age_ms=30.0)
    s = stats.summary("x")
    assert s.level == OK and float(s.values["rate_hz"]) == pytest.approx(20.0)
    assert float(s.values["latency_ms_mean"]) == pytest.approx(45.0)  # last 4: 30..60
    assert float(s.values["latency_ms_max"]) == pytest.approx(60.0)
    stats.drop("field 'step' is 3")
    s = stats.summary("x", horizon_s=10.0)
    assert s.level == WARN and "field 'step' is 3" in s.message
    clock.t += 11.0
    assert stats.summary("x", horizon_s=10.0).level == OK  # the drop aged out
    assert stats.summary("x").values["frames_dropped"] == "1"


def test_throttled_log_repeats_after_the_interval_and_once_is_once():
    clock, log = FakeClock(), StubLogger()
    throttled = ThrottledLog(log, clock)
    assert throttled("warning", "bad frame") and not throttled("warning", "bad frame")
    assert throttled("warning", "another bad frame")
    clock.t = LOG_REPEAT_S + 0.1
    assert throttled("warning", "bad frame")
    assert throttled.once("info", "note") and not throttled.once("info", "note")
    assert [t for _, t in log.lines] == ["bad frame", "another bad frame",
                                         "bad frame (1 more like this suppressed)", "note"]


def test_throttle_is_keyed_on_the_kind_of_fault_not_the_stamp_and_its_state_is_bounded():
    clock, log = FakeClock(), StubLogger()
    throttled = ThrottledLog(log, clock)
    assert fault_kind("dropped frame 1700000000123 ns: step 12 < 3.5") == \
        "dropped frame # ns: step # < #"
    for k in range(1000):  # 1000 frames in 1 s, each with its own stamp: one line
        clock.t = k / 1000
        throttled("warning", f"dropped frame {1_700_000_000_000 + k} ns: bad step")
    assert len(log.lines) == 1
    clock.t = 1.0 + LOG_REPEAT_S
    assert throttled("warning", "dropped frame 5 ns: bad step")
    assert log.lines[-1][1].endswith("(999 more like this suppressed)")
    assert throttled("warning", "x", key="one kind") and not throttled("warning", "y",
                                                                       key="one kind")
    for k in range(10 * MAX_LOG_KEYS):  # many different kinds and notes: bounded memory
        throttled("warning", f"kind {chr(65 + k % 26)}{k // 26 * 'z'}")
        throttled.once("info", f"note {k}")
    assert len(throttled._last) <= MAX_LOG_KEYS and len(throttled._once) <= MAX_LOG_KEYS


def test_each_severity_has_its_own_call_site():
    log = StubLogger()
    throttled = ThrottledLog(log, FakeClock())
    for level in ("warning", "error", "info", "warning", "error"):
        throttled(level, f"{level} line")  # raises ValueError if one line served two levels
        throttled.once(level, f"{level} once")
    assert {s for s, _ in log.lines} == {"info", "warning", "error"}
