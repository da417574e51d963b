"""The parent side of an execution environment, against children that misbehave."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bridge.clock import now_ms
from bridge.environments.process import ExecutionEnvironment, Invocation

# Says it is ready, then never reads its control pipe again.
DEAF_CHILD = """
import os, sys, time
out_fd, sentinel = int(sys.argv[2]), sys.argv[3]
os.write(out_fd, b'{"type": "ready", "init_duration_ms": 1}\\n')
sys.stdout.write("\\x1e" + sentinel + "\\x1e")
sys.stdout.flush()
time.sleep(60)
"""


def test_a_child_that_stops_reading_times_out_at_the_deadline(tmp_path: Path):
    script = tmp_path / "deaf.py"
    script.write_text(DEAF_CHILD)
    environment = ExecutionEnvironment(
        [sys.executable, str(script)],
        {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        str(tmp_path),
        lambda request_id, text: None,
    )
    # Far more than a pipe holds, so the send itself must give up.
    event = json.dumps({"data": "x" * 3_000_000})
    try:
        assert environment.wait_ready(now_ms() + 10_000)
        started = time.monotonic()
        outcome = environment.invoke(
            Invocation(
                request_id="r-1",
                invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
                deadline_ms=now_ms() + 1000,
                timeout_ms=1000,
                event_json=event,
            )
        )
        elapsed = time.monotonic() - started
    finally:
        environment.close()

    assert outcome.status == "timeout"
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Sandbox.Timedout"
    assert elapsed < 5
    assert not environment.alive
