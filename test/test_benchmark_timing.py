"""The benchmarks' one wall-clock loop (benchmarks/timing.py), on a fake clock."""

import time

import pytest

from benchmarks import timing


@pytest.fixture
def clock(monkeypatch):
    """Replace the host clock with one that moves only when the test moves it."""
    now = {"t": 0.0}
    monkeypatch.setattr(time, "perf_counter", lambda: now["t"])
    return now


def test_timed_calls_exclude_warm_ups_and_argument_building(clock):
    seen = []

    def prepare(i):  # slow, but outside the timed span
        clock["t"] += 100.0
        return i

    def step(i):
        seen.append(i)
        clock["t"] += 1.0 + i  # call i takes 1 + i seconds

    times = timing.wall_times(step, 3, warmup=2, prepare=prepare)

    assert seen == [0, 1, 2, 3, 4]  # warm-ups get their own arguments too
    assert times == [3.0, 4.0, 5.0]  # calls 2, 3, 4 only, without prepare's 100 s


def test_sync_brackets_each_timed_call_and_what_it_waits_for_is_counted(clock):
    events = []

    def sync():  # the second sync of each call waits 0.5 s for queued work
        events.append("sync")
        if events[-2:-1] == ["call"]:
            clock["t"] += 0.5

    def call():
        events.append("call")
        clock["t"] += 1.0

    times = timing.wall_times(call, 2, warmup=1, sync=sync)

    assert events == ["call", "sync", "call", "sync", "sync", "call", "sync"]
    assert times == [1.5, 1.5]


def test_bad_counts_are_refused_by_name():
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        timing.wall_times(lambda: None, 0)
