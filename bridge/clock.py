"""The lab's clock against AWS's, so a deadline means the same instant on both.

The proxy states its deadline in its own clock, which Lambda keeps in step
with AWS's. The lab's clock may be off by seconds. SQS stamps each message
with the time it was first received, in AWS's clock; the lab reads its own
clock when the receive returns. The difference is the offset plus the time
the answer took to travel, which is never negative, so the smallest
difference over recent messages is the best estimate of the offset.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping

SAMPLES = 50


class ClockOffset:
    """Estimates how far the lab's clock is ahead of AWS's, in milliseconds."""

    def __init__(self) -> None:
        self._samples: deque[int] = deque(maxlen=SAMPLES)
        self._lock = threading.Lock()

    def observe(self, attributes: Mapping[str, str], received_at_ms: int) -> None:
        """Learn from one message's SQS system attributes."""
        if attributes.get("ApproximateReceiveCount") != "1":
            return
        stamp = attributes.get("ApproximateFirstReceiveTimestamp")
        if stamp is None:
            return
        with self._lock:
            self._samples.append(received_at_ms - int(stamp))

    @property
    def offset_ms(self) -> int:
        with self._lock:
            return min(self._samples, default=0)

    def to_lab(self, aws_time_ms: int) -> int:
        """The lab-clock time of an instant given in AWS's clock."""
        return aws_time_ms + self.offset_ms


def now_ms() -> int:
    """The lab's clock in epoch milliseconds."""
    return int(time.time() * 1000)
