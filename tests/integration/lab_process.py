"""A lab in a process of its own, for tests that signal or kill it.

Run as a script, it serves the local cloud's request queue until SIGINT or
SIGTERM, as `mless run` does (`bridge.shutdown.serve_until_signalled`):

    python lab_process.py CONFIG_JSON

It prints READY on stdout once serving, the lab's console (START, the
handlers' lines, END, REPORT) on stdout, its logs and notes on stderr, and
STATS with the poller's counts just before it exits. Imported, `LabProcess`
starts one and reads what it prints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def main(config: dict[str, Any]) -> int:
    from bridge.aws import Clients
    from bridge.console import Console
    from bridge.function_settings import FunctionSettings
    from bridge.lab import Lab
    from bridge.poller import Queues
    from bridge.shutdown import serve_until_signalled

    logging.basicConfig(
        level=config.get("log_level", "INFO"),
        format="LOG %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    clients = Clients(
        region=config["region"],
        endpoint_url=config["endpoint_url"],
        credentials=("testing", "testing"),
    )
    functions = [
        FunctionSettings(
            f["name"], f["handler"], Path(f["code_dir"]), concurrency=f["concurrency"]
        )
        for f in config["functions"]
    ]
    lab = Lab(
        clients.client("sqs"),
        Queues(**config["queues"]),
        functions,
        Console(sys.stdout),
        endpoint_url=config["endpoint_url"],
        poll_wait_seconds=config.get("poll_wait_seconds", 1),
        visibility_timeout_seconds=config.get("visibility_timeout_seconds"),
    ).start()
    print("READY", flush=True)

    def note(text: str) -> None:
        print(f"NOTE {text}", file=sys.stderr, flush=True)

    status = serve_until_signalled(lab, config.get("grace_seconds", 10.0), note)
    stats = dataclasses.asdict(lab.poller.stats())
    print(f"STATS {json.dumps(stats)}", file=sys.stderr, flush=True)
    return status


class LabProcess:
    """A lab serving in a child process, with what it prints kept line by line."""

    def __init__(
        self,
        config: dict[str, Any],
        environment: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        env = {**os.environ, **(environment or {})}
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "lab_process.py"), json.dumps(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._open = 2
        self._changed = threading.Condition()
        for stream, lines in (
            (self.process.stdout, self.stdout),
            (self.process.stderr, self.stderr),
        ):
            threading.Thread(
                target=self._read, args=(stream, lines), daemon=True
            ).start()
        self.wait_for(r"^READY$", stream="stdout", timeout=30)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(
        self, pattern: str, *, stream: str = "stderr", timeout: float = 20
    ) -> str:
        """The first line that matches, waited for; AssertionError at the timeout."""
        lines = self.stdout if stream == "stdout" else self.stderr
        give_up_at = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in lines:
                    if re.search(pattern, line):
                        return line
                left = give_up_at - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._open):
                    raise AssertionError(
                        f"no line matching {pattern!r} on {stream}; it printed:\n"
                        + "\n".join(lines[-40:])
                    )
                self._changed.wait(min(left, 0.2))

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        """Wait for the lab to exit; return its status."""
        status = self.process.wait(timeout=timeout)
        give_up_at = time.monotonic() + 5
        while self._open and time.monotonic() < give_up_at:
            time.sleep(0.05)
        return status

    def stats(self) -> dict[str, int]:
        line = self.wait_for(r"^STATS ", timeout=5)
        return dict(json.loads(line.split(" ", 1)[1]))

    def close(self) -> None:
        """Stop the lab if it still runs, as Ctrl+C does; kill it if that fails.

        A lab killed in the middle of a long poll can leave the next message
        SQS receives for it hidden for a visibility timeout, which a later
        test would pay for.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=10)

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()


def lab_config(
    local_cloud: Any, functions: list[dict[str, Any]], **options: Any
) -> dict[str, Any]:
    """The configuration of a lab process serving the local cloud's stack."""
    queues = local_cloud.queues
    return {
        "endpoint_url": local_cloud.endpoint_url,
        "region": local_cloud.clients.region,
        "queues": dataclasses.asdict(queues),
        "functions": functions,
        **options,
    }


def kill_leftover_environments(pids: set[int]) -> None:
    """Kill execution environments a killed lab left running, if they still run."""
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"python_worker" in command:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
