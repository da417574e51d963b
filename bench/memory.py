"""Figure 6: resident memory of a serving lab, and of one idle warm environment.

The lab runs as `mless run` does, in a process of its own against a local
cloud, and serves a few invocations first; then its resident set and that of
its warm Python execution environment are read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import HANDLERS
from bench.stats import Figure, Summary
from bridge.local_cloud import LocalCloud

INVOCATIONS = 50


def memory() -> list[Figure]:
    """The lab's and one warm environment's resident memory, in MB."""
    with LocalCloud() as cloud:
        cloud.create_function("bench-memory", timeout_seconds=10)
        lab = _start_lab(cloud.endpoint_url)
        try:
            for _ in range(INVOCATIONS):
                result = cloud.lambda_service.invoke("bench-memory", b'{"n": 1}')
                if result.function_error:
                    raise RuntimeError(result.payload.decode())
            time.sleep(1)
            lab_mb = _rss_mb(lab.pid)
            environments = [_rss_mb(pid) for pid in _children(lab.pid)]
        finally:
            lab.send_signal(signal.SIGINT)
            lab.wait(60)
    return [
        Figure(
            "lab (poller) memory",
            "MB",
            Summary(lab_mb, lab_mb, 1),
            target="at most 80 MB",
            met=lab_mb <= 80,
            notes=[f"after {INVOCATIONS} invocations; the `mless run` process"],
        ),
        Figure(
            "idle warm Python environment memory",
            "MB",
            Summary(max(environments), max(environments), len(environments)),
            target="at most 30 MB",
            met=max(environments) <= 30,
        ),
    ]


def _start_lab(endpoint_url: str) -> subprocess.Popen[bytes]:
    folder = Path(tempfile.mkdtemp(prefix="bench-lab-"))
    (folder / "mless.yaml").write_text(
        f"functions:\n  bench-memory:\n    code_dir: {HANDLERS}\n"
        "    handler: noop.handler\n"
    )
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "MLESS_HOME": str(folder / "home"),
    }
    command = [sys.executable, "-m", "bridge.cli", "run", "--no-history"]
    command += ["--no-color", "--endpoint-url", endpoint_url]
    lab = subprocess.Popen(
        command,
        cwd=folder,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert lab.stderr is not None
    for line in lab.stderr:
        if b"serving" in line:
            return lab
    raise RuntimeError("mless run ended before serving")


def _children(pid: int) -> list[int]:
    # Each thread lists the children it started; the pool starts them from
    # the poller's worker threads.
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
