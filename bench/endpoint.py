"""`python -m bench.endpoint`: what the endpoint does for each invocation, call by call.

Throughput at 32 callers is bound by the endpoint, moto's server, which is
one Python process. `make bench` says how much of its CPU each invocation
takes; this says where that CPU goes. It starts moto's server with a meter
around its WSGI application (the handling thread's CPU time, and the bytes
in and out, by operation and queue), then runs the throughput windows at 32
callers, bridge and raw in turn, and prints a table per window: calls, CPU
milliseconds and bytes per invocation. CPU outside the application
(parsing HTTP, a thread per connection) shows as the process's total less
the metered calls.

Run it on a quiet machine; it takes about a minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench import figures
from bridge.local_cloud import free_port

# Paths the meter answers itself, outside moto.
STATS_PATH = "/__meter/stats"
RESET_PATH = "/__meter/reset"
CONCURRENCY = 32
WINDOW_SECONDS = 10.0
# Each call's figures: count, CPU ms, bytes in, bytes out.
Tally = list[float]


class Meter:
    """A WSGI application around moto's that tallies each call."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._tallies: dict[str, Tally] = defaultdict(lambda: [0, 0.0, 0, 0])

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in (STATS_PATH, RESET_PATH):
            return self._answer(path, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        started = time.thread_time()
        result = self._app(environ, start_response)
        chunks = list(result)
        close = getattr(result, "close", None)
        if close is not None:
            close()
        spent_ms = (time.thread_time() - started) * 1000
        with self._lock:
            tally = self._tallies[_call_name(environ, body)]
            tally[0] += 1
            tally[1] += spent_ms
            tally[2] += len(body)
            tally[3] += sum(len(chunk) for chunk in chunks)
        return chunks

    def _answer(self, path: str, start_response: Any) -> list[bytes]:
        with self._lock:
            if path == RESET_PATH:
                self._tallies.clear()
            body = json.dumps(self._tallies).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]


def _call_name(environ: dict[str, Any], body: bytes) -> str:
    """`Operation queue` for SQS, `METHOD bucket` for S3, else the path."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("AmazonSQS."):
        try:
            queue_url = json.loads(body).get("QueueUrl", "")
        except ValueError:
            queue_url = ""
        return f"{target.split('.', 1)[1]} {_queue_kind(queue_url)}"
    first = environ.get("PATH_INFO", "/").split("/")[1]
    return f"{environ['REQUEST_METHOD']} {first or '/'}"


def _queue_kind(queue_url: str) -> str:
    name = queue_url.rsplit("/", 1)[-1]
    for mark, kind in (
        ("floor-requests", "raw request queue"),
        ("floor-replies", "raw reply queues"),
        ("reply", "mless reply queues"),
        ("Request", "mless request queue"),
    ):
        if mark in name:
            return kind
    return name or "?"


def serve(port: int) -> None:
    """Run moto's server, metered, on 127.0.0.1:`port` until killed."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    app = Meter(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


class MeteredServer:
    """The metered server in a child process."""

    def __init__(self) -> None:
        port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.endpoint", "--serve", str(port)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        give_up_at = time.monotonic() + 30
        while True:
            try:
                self.tallies(reset=True)
                return
            except OSError:
                if time.monotonic() > give_up_at or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError("the metered server did not start") from None
                time.sleep(0.2)

    def tallies(self, reset: bool = False) -> dict[str, Tally]:
        path = RESET_PATH if reset else STATS_PATH
        with urllib.request.urlopen(self.endpoint_url + path, timeout=5) as answer:
            result: dict[str, Tally] = json.loads(answer.read())
        return result

    def process_cpu_ms(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)
        user, system = fields[1].split()[11:13]
        return (int(user) + int(system)) * 1000 / _clock_ticks()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def window(server: MeteredServer, side: str, action: Callable[[], None]) -> list[str]:
    """One timed window at CONCURRENCY callers; its table, per invocation."""
    server.tallies(reset=True)
    cpu_before = server.process_cpu_ms()
    started = time.monotonic()
    rate, _, _ = figures.measure_rate(action, CONCURRENCY, WINDOW_SECONDS, warm=False)
    count = rate * (time.monotonic() - started)
    process_ms = (server.process_cpu_ms() - cpu_before) / count
    tallies = server.tallies()
    metered_ms = sum(tally[1] for tally in tallies.values()) / count
    lines = [
        f"{side}: {rate:.1f}/s; endpoint CPU per invocation {process_ms:.1f} ms, "
        f"{metered_ms:.1f} in calls, {process_ms - metered_ms:.1f} around them; "
        f"{sum(t[0] for t in tallies.values()) / count:.2f} calls",
        f"  {'call':36} {'calls':>6} {'CPU ms':>7} {'B in':>7} {'B out':>7}",
    ]
    for name, (calls, cpu_ms, bytes_in, bytes_out) in sorted(
        tallies.items(), key=lambda item: -item[1][1]
    ):
        if cpu_ms / count < 0.05:
            continue
        lines.append(
            f"  {name:36} {calls / count:6.2f} {cpu_ms / count:7.2f} "
            f"{bytes_in / calls:7.0f} {bytes_out / calls:7.0f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, default=2, help="pairs of windows")
    options = parser.parse_args(argv)
    if options.serve:
        serve(options.serve)
        return 0
    server = MeteredServer()
    rig = figures.BridgeRig(endpoint_url=server.endpoint_url)
    try:
        # Start the 32 proxy environments a few at a time, as Lambda would.
        for callers in (1, 8, 16, 24, CONCURRENCY):
            figures.measure_rate(rig.invoke, callers, 1, warm=True)
        figures.measure_rate(rig.echo.round_trip, CONCURRENCY, 1, warm=True)
        for _ in range(options.windows):
            for side, action in (("bridge", rig.invoke), ("raw", rig.echo.round_trip)):
                print("\n".join(window(server, side, action)), flush=True)
    finally:
        rig.close()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
