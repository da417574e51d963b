"""Where the CPU goes: processor time per action, by process, read from /proc.

On a two-core machine the endpoint (moto's server, one Python process that
opens a connection and a thread for every call) can use more CPU per round
trip than the bridge's own processes together. Timing alone cannot show
that; this does, by reading each process's user and system time before and
after a number of actions. Linux only: elsewhere it measures nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

_PROC = Path("/proc")
# What moto's server is called in the notes.
ENDPOINT = "endpoint (moto)"


class CpuMeter:
    """CPU used by this process and its children from now on.

    Children are named by what they run: moto's server, or execution
    environments by their handler (the local cloud's proxy environments run
    `lambda_proxy.handler.handler`), those of one handler counted together.
    Children started later are not seen.
    """

    def __init__(self) -> None:
        self._processes = _this_and_children()
        self._before = {pid: _cpu_ms(pid) for pid in self._processes}
        self._machine_before = _machine_cpu_ms()
        self._started = time.monotonic()

    def per_action(self, count: int) -> dict[str, float]:
        """CPU milliseconds per action so far, by process or group of them."""
        used: dict[str, float] = {}
        for pid, name in self._processes.items():
            spent = _cpu_ms(pid) - self._before[pid]
            used[name] = used.get(name, 0.0) + spent / max(1, count)
        return {name: round(ms, 2) for name, ms in used.items()}

    def busy_percent(self) -> float | None:
        """How much of the machine's CPU these processes used so far."""
        if not self._processes:
            return None
        return self._percent_of_machine(sum(self.per_action(1).values()))

    def machine_busy_percent(self) -> float | None:
        """How much of the machine's CPU anything used so far, ours or not."""
        if self._machine_before is None:
            return None
        busy_ms = (_machine_cpu_ms() or 0.0) - self._machine_before
        return self._percent_of_machine(busy_ms)

    def _percent_of_machine(self, busy_ms: float) -> float:
        wall_ms = (time.monotonic() - self._started) * 1000
        return 100 * busy_ms / (wall_ms * (os.cpu_count() or 1))


def cpu_ms_per_action(action: Callable[[], None], count: int) -> dict[str, float]:
    """CPU milliseconds per action of this process and each of its children."""
    meter = CpuMeter()
    for _ in range(count):
        action()
    return meter.per_action(count)


def described(per_action: dict[str, float]) -> str:
    """One line for a figure's notes: the largest users first."""
    if not per_action:
        return "no /proc here: CPU by process not measured"
    ranked = sorted(per_action.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {ms:.1f}" for name, ms in ranked if ms >= 0.05)


def _this_and_children() -> dict[int, str]:
    """Each process by pid, with what it is named in the figures' notes."""
    if not _PROC.is_dir():
        return {}
    me = os.getpid()
    found = {me: "bench process (lab, caller)"}
    environments: dict[str, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) != me:
            continue
        if b"moto.server" in command:
            found[int(entry.name)] = ENDPOINT
        else:
            environments.setdefault(_handler(entry), []).append(int(entry.name))
    for handler, pids in environments.items():
        name = f"environments of {handler} x{len(pids)}"
        found.update(
            (pid, name if len(pids) > 1 else f"environment of {handler}")
            for pid in pids
        )
    return found


def _handler(process: Path) -> str:
    try:
        variables = (process / "environ").read_bytes().split(b"\0")
    except OSError:
        return "?"
    for variable in variables:
        if variable.startswith(b"_HANDLER="):
            return variable.partition(b"=")[2].decode(errors="replace")
    return "?"


def _cpu_ms(pid: int) -> float:
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state is field 3 of stat(5), utime 14 and stime 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def _machine_cpu_ms() -> float | None:
    """The CPU time every core of the machine has spent busy since boot."""
    try:
        with open(_PROC / "stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # proc(5): user, nice, system, idle, iowait, irq, softirq, steal, ...;
    # guest time is already counted in user.
    busy_ticks = sum(fields[:8]) - fields[3] - fields[4]
    return busy_ticks * 1000 / os.sysconf("SC_CLK_TCK")
