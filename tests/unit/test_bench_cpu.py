"""CPU per action, by process, as the benchmarks report it."""

from __future__ import annotations

import subprocess
import sys
import time

from bench import cpu


def _spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_the_cpu_of_this_process_and_a_busy_child_is_counted():
    child = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        env={"_HANDLER": "spin.handler"},
    )
    try:
        time.sleep(0.2)
        used = cpu.cpu_ms_per_action(lambda: _spin(0.05), 4)
    finally:
        child.kill()
        child.wait()

    assert used["bench process (lab, caller)"] >= 40
    spinning = [ms for name, ms in used.items() if "spin.handler" in name]
    assert spinning and spinning[0] > 20


def test_the_largest_users_come_first():
    line = cpu.described({"a": 1.0, "b": 7.25, "idle": 0.0})

    assert line == "b 7.2, a 1.0"
