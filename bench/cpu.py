"""Where the CPU goes: processor time per action, by process, read from /proc.

On a two-core machine the endpoint (moto's server, one Python process that
opens a connection and a thread for every call) can use more CPU per round
trip than the bridge's own processes together. Timing alone cannot show
that; this does, by reading each process's user and system time before and
after a number of actions. Linux only: elsewhere it measures nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

_PROC = Path("/proc")


def cpu_ms_per_action(action: Callable[[], None], count: int) -> dict[str, float]:
    """CPU milliseconds per action of this process and each of its children.

    Children are named by what they run: moto's server, or an execution
    environment by its handler (the local cloud's proxy environments run
    `lambda_proxy.handler.handler`).
    """
    processes = _this_and_children()
    if not processes:
        for _ in range(count):
            action()
        return {}
    before = {name: _cpu_ms(pid) for name, pid in processes.items()}
    for _ in range(count):
        action()
    return {
        name: round((_cpu_ms(pid) - before[name]) / count, 2)
        for name, pid in processes.items()
    }


def described(per_action: dict[str, float]) -> str:
    """One line for a figure's notes: the largest users first."""
    if not per_action:
        return "no /proc here: CPU by process not measured"
    ranked = sorted(per_action.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {ms:.1f}" for name, ms in ranked if ms >= 0.05)


def _this_and_children() -> dict[str, int]:
    if not _PROC.is_dir():
        return {}
    me = os.getpid()
    found = {"bench process (lab, caller)": me}
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
            found["endpoint (moto)"] = int(entry.name)
        else:
            found[f"environment of {_handler(entry)} ({entry.name})"] = int(entry.name)
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
