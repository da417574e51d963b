"""What the lab's terminal shows: each invocation framed as CloudWatch frames it.

Lines follow Lambda's own log format, so what a developer reads in the lab is
what they would read in CloudWatch: START, the handler's output, END and the
tab-separated REPORT line. Each line is prefixed with the function's name, so
several functions can share one terminal.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import TextIO

from bridge.environments.process import Outcome


def report_line(outcome: Outcome, memory_mb: int) -> str:
    """Lambda's REPORT line for one invocation."""
    init_ms = outcome.init_duration_ms or 0.0
    fields = [
        f"REPORT RequestId: {outcome.request_id}",
        f"Duration: {outcome.duration_ms:.2f} ms",
        # Lambda bills the init phase too, rounded up to the millisecond.
        f"Billed Duration: {math.ceil(outcome.duration_ms + init_ms)} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {outcome.max_memory_mb} MB",
    ]
    if outcome.init_duration_ms is not None:
        fields.append(f"Init Duration: {outcome.init_duration_ms:.2f} ms")
    if outcome.status == "timeout":
        fields.append("Status: timeout")
    elif outcome.status == "crash" or (outcome.error or {}).get("requestId") == "":
        fields.append(f"Status: error\tError Type: {outcome.error_type}")
    return "\t".join(fields) + "\t"


class Console:
    """Writes invocation logs to a stream, one whole line at a time."""

    def __init__(self, stream: TextIO | None = None, prefix: bool = True) -> None:
        self._stream = stream or sys.stderr
        self._prefix = prefix
        self._lock = threading.Lock()

    def start(self, function: str, request_id: str, version: str) -> None:
        self._write(function, f"START RequestId: {request_id} Version: {version}")

    def line(self, function: str, request_id: str | None, text: str) -> None:
        self._write(function, text)

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        self._write(function, f"END RequestId: {outcome.request_id}")
        self._write(function, report_line(outcome, memory_mb))

    def note(self, text: str) -> None:
        """A line of the lab's own, not of any invocation."""
        with self._lock:
            self._stream.write(f"mless: {text}\n")
            self._stream.flush()

    def _write(self, function: str, text: str) -> None:
        line = f"{function} | {text}" if self._prefix else text
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
