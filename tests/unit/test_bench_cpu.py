"""CPU per action, by process, as the benchmarks report it."""

from __future__ import annotations

import os
import signal
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


def test_the_machines_cpu_counts_a_process_that_is_not_ours():
    # A grandchild whose parent has exited belongs to init, not to this
    # process: like another user's load, only the machine's figure sees it.
    launched = subprocess.run(
        [sys.executable, "-c", _SPIN_OUTSIDE_THIS_FAMILY],
        capture_output=True,
        text=True,
        check=True,
    )
    outsider = int(launched.stdout)
    try:
        time.sleep(0.2)
        meter = cpu.CpuMeter()
        time.sleep(0.5)
        ours, everything = meter.busy_percent(), meter.machine_busy_percent()
    finally:
        os.kill(outsider, signal.SIGKILL)

    assert ours is not None and everything is not None
    # The outsider keeps one of the machine's cores busy.
    assert everything - ours >= 0.6 * 100 / (os.cpu_count() or 1)


_SPIN_OUTSIDE_THIS_FAMILY = """
import os
pid = os.fork()
if pid:
    print(pid)
else:
    os.close(1)
    os.close(2)
    while True:
        pass
"""
