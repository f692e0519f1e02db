"""Pairing of several topics by header stamp, without ROS.

The approximate-time policy the stereo node needs (``message_filters.ApproximateTimeSynchronizer``
is not on PyPI, and doing it here makes a ROS 2 install and a pip-only rclpy behave the same).

Policy: each input keeps its ``queue_size`` newest messages by stamp. When a message arrives,
every other input contributes its message nearest in stamp; if all exist and the spread of
the set's stamps is at most ``slop_ns``, the set is emitted and it and everything older is
removed from every queue (a set is never emitted out of order). Memory is bounded by
``inputs * queue_size`` messages.
"""

from __future__ import annotations

from typing import Any


class StampSync:
    """Approximate-time synchroniser of ``inputs`` topics.

    Args:
        inputs: number of topics (the stereo node: left, right, left info, right info).
        queue_size: messages kept per topic.
        slop_ns: largest stamp spread within an emitted set, nanoseconds.
    """

    def __init__(self, inputs: int, queue_size: int, slop_ns: int) -> None:
        if inputs < 1 or queue_size < 1 or slop_ns < 0:
            raise ValueError(f"StampSync needs inputs >= 1, queue_size >= 1, slop_ns >= 0; got "
                             f"{inputs}, {queue_size}, {slop_ns}")
        self.queue_size, self.slop_ns = queue_size, slop_ns
        self.queues: list[dict[int, Any]] = [{} for _ in range(inputs)]

    def add(self, index: int, stamp: int, msg: Any) -> list[Any] | None:
        """Queue ``msg`` (stamped ``stamp`` ns) on input ``index``; return the set it completes.

        The matched set is one message per input, in input order; None when this message
        completes none.
        """
        queue = self.queues[index]
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        chosen = []
        for k, other in enumerate(self.queues):
            if k == index:
                chosen.append(stamp)
                continue
            if not other:
                return None
            chosen.append(min(other, key=lambda s: abs(s - stamp)))
        if max(chosen) - min(chosen) > self.slop_ns:
            return None
        matched = [q[s] for q, s in zip(self.queues, chosen)]
        for q, s in zip(self.queues, chosen):
            for old in [t for t in q if t <= s]:
                del q[old]
        return matched

    def __len__(self) -> int:
        """Messages waiting in all queues."""
        return sum(len(q) for q in self.queues)
