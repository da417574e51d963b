"""Each benchmark figure, measured with its baseline in the same run."""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import cpu
from bench.floor import SqsEcho
from bench.stats import Figure, Summary, timed_ms
from bridge.environments.pool import Pool
from bridge.environments.process import Invocation, Outcome
from bridge.environments.variables import Platform
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud

HANDLERS = Path(__file__).resolve().parent / "handlers"
# A FunctionIdentity and Credentials, written as plain dicts.
FUNCTION: Any = {
    "name": "bench",
    "version": "$LATEST",
    "invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
    "memory_mb": 128,
    "timeout_ms": 30_000,
    "region": "us-east-1",
    "log_group": "/aws/lambda/bench",
    "log_stream": "2026/12/03/[$LATEST]bench",
}
CREDENTIALS: Any = {
    "access_key_id": "x",
    "secret_access_key": "y",
    "session_token": None,
}


class SilentLog:
    """Drops every line: the benchmarks measure the bridge, not a terminal."""

    def start(self, function: str, request_id: str, version: str) -> None: ...

    def line(self, function: str, request_id: str | None, text: str) -> None: ...

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None: ...


def noop_settings(name: str = "bench", concurrency: int = 64) -> FunctionSettings:
    return FunctionSettings(name, "noop.handler", HANDLERS, concurrency=concurrency)


def invocation(request_id: str, timeout_ms: int = 30_000) -> Invocation:
    return Invocation(
        request_id=request_id,
        invoked_function_arn=FUNCTION["invoked_arn"],
        deadline_ms=int(time.time() * 1000) + timeout_ms,
        timeout_ms=timeout_ms,
        event_json='{"n": 1}',
    )


def invoke_pool(pool: Pool, request_id: str) -> Outcome:
    return pool.invoke(FUNCTION, {}, CREDENTIALS, invocation(request_id))


class BridgeRig:
    """A local cloud with one no-op function served by a lab.

    The local cloud starts moto's server, or uses the one at `endpoint_url`.
    """

    def __init__(self, concurrency: int = 64, endpoint_url: str | None = None) -> None:
        self.cloud = LocalCloud(endpoint_url=endpoint_url)
        self.cloud.create_function("bench-noop", timeout_seconds=30)
        self.lab = Lab(
            self.cloud.clients.client("sqs"),
            self.cloud.queues,
            [noop_settings("bench-noop", concurrency)],
            SilentLog(),
            endpoint_url=self.cloud.endpoint_url,
            poll_wait_seconds=1,
        ).start()
        self.echo = SqsEcho(self.cloud.clients.client("sqs"))

    def invoke(self) -> None:
        result = self.cloud.lambda_service.invoke("bench-noop", b'{"n": 1}')
        if result.function_error:
            raise RuntimeError(result.payload.decode())

    def close(self) -> None:
        self.echo.close()
        self.lab.stop(grace_seconds=5)
        self.cloud.close()


def round_trip(rig: BridgeRig, rounds: int) -> Figure:
    """Figure 1: a trivial invocation through the bridge against two bare hops."""
    for _ in range(10):
        rig.invoke()
        rig.echo.round_trip()
    bridge: list[float] = []
    floor: list[float] = []
    # Alternate sample by sample, so drift of the endpoint hits both alike.
    for _ in range(rounds):
        floor.append(timed_ms(rig.echo.round_trip))
        bridge.append(timed_ms(rig.invoke))
    figure = Figure(
        "round trip",
        "ms",
        Summary.of(bridge),
        Summary.of(floor),
        "bare SQS send + long-poll receive, request and reply",
        "median <= 1.25 x floor, p99 <= 1.5 x floor",
    )
    met = (figure.ratio_median or 99) <= 1.25 and (figure.ratio_p99 or 99) <= 1.5
    count = max(20, rounds // 4)
    return _with_met(
        figure,
        met,
        "CPU per round trip, ms, bridge: "
        + cpu.described(cpu.cpu_ms_per_action(rig.invoke, count)),
        "CPU per round trip, ms, floor: "
        + cpu.described(cpu.cpu_ms_per_action(rig.echo.round_trip, count)),
    )


def warm_dispatch(rounds: int) -> Figure:
    """Figure 2: handing an invocation to a warm environment, against a call."""
    pool = Pool(noop_settings(), SilentLog(), Platform())
    try:
        invoke_pool(pool, "warm-up")
        dispatched = [
            timed_ms(functools.partial(invoke_pool, pool, f"r{i}"))
            for i in range(rounds)
        ]
    finally:
        pool.close()
    handler = _import_noop()
    context = SimpleNamespace(aws_request_id="direct")
    direct = [timed_ms(lambda: handler({"n": 1}, context)) for _ in range(rounds)]
    figure = Figure(
        "warm dispatch",
        "ms",
        Summary.of(dispatched),
        Summary.of(direct),
        "calling the handler directly in one process",
        "at most 2 ms added at the median",
    )
    added = figure.measured.median - (figure.baseline or figure.measured).median
    return _with_met(figure, added <= 2.0, f"added at the median: {added:.3f} ms")


def cold_start(rounds: int) -> Figure:
    """Figure 3: a new environment up to its first result, less the handler's import."""
    overheads: list[float] = []
    imports: list[float] = []
    for index in range(rounds):
        pool = Pool(noop_settings(), SilentLog(), Platform())
        try:
            started = time.perf_counter()
            outcome = invoke_pool(pool, f"cold-{index}")
            total_ms = (time.perf_counter() - started) * 1000
        finally:
            pool.close()
        handler_import_ms = outcome.init_duration_ms or 0.0
        imports.append(handler_import_ms)
        overheads.append(total_ms - handler_import_ms)
    figure = Figure(
        "cold start",
        "ms",
        Summary.of(overheads),
        Summary.of(imports),
        "the handler module's own import (subtracted)",
        "at most 150 ms",
    )
    return _with_met(figure, figure.measured.median <= 150)


# Throughput is measured in this many windows a side, taken in turn.
THROUGHPUT_WINDOWS = 3


def throughput(rig: BridgeRig, concurrency: int, seconds: float) -> Figure:
    """Figure 4: invocations per second against the endpoint's raw rate.

    Each side runs in THROUGHPUT_WINDOWS windows, bridge and raw in turn, so
    that a drift of the endpoint hits both alike; each side's figure is its
    median window. The notes, from the first pair of windows, say how busy
    the machine was and what each invocation cost in CPU, by process.
    """
    window_seconds = seconds / THROUGHPUT_WINDOWS
    windows = [
        (
            measure_rate(rig.invoke, concurrency, window_seconds, warm=window == 0),
            measure_rate(
                rig.echo.round_trip, concurrency, window_seconds, warm=window == 0
            ),
        )
        for window in range(THROUGHPUT_WINDOWS)
    ]
    (_, bridge_cpu, bridge_endpoint_ms), (_, raw_cpu, raw_endpoint_ms) = windows[0]
    figure = Figure(
        f"throughput at {concurrency} concurrent",
        "invocations/s",
        Summary.of([bridge[0] for bridge, _ in windows]),
        Summary.of([raw[0] for _, raw in windows]),
        "bare SQS request/reply round trips at the same concurrency",
        "at least 90 % of raw at 32" if concurrency == 32 else "",
    )
    met = None if concurrency != 32 else (figure.ratio_median or 0) >= 0.9
    notes = [
        f"CPU per invocation, ms, bridge: {bridge_cpu}",
        f"CPU per round trip, ms, raw: {raw_cpu}",
    ]
    if bridge_endpoint_ms and raw_endpoint_ms:
        # moto's server is one Python process: about one core at most.
        notes.append(
            "the endpoint's ceiling (one core over its CPU per call): bridge "
            f"{1000 / bridge_endpoint_ms:.1f}/s, raw {1000 / raw_endpoint_ms:.1f}/s, "
            f"so at most {raw_endpoint_ms / bridge_endpoint_ms:.2f} of raw"
        )
    return _with_met(figure, met, *notes)


def measure_rate(
    action: Callable[[], None], concurrency: int, seconds: float, *, warm: bool
) -> tuple[float, str, float | None]:
    """Actions per second; a line on the CPU they used while timed; and the
    endpoint's CPU milliseconds per action (None without /proc).

    `warm` first takes every caller's path once (proxy environments, reply
    queues), untimed.
    """
    if warm:
        with ThreadPoolExecutor(concurrency) as warmers:
            list(warmers.map(lambda _: action(), range(concurrency)))
    done = [0] * concurrency
    stop_at = time.monotonic() + seconds

    def run(index: int) -> None:
        while time.monotonic() < stop_at:
            action()
            done[index] += 1

    meter = cpu.CpuMeter()
    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = sum(done) / (time.monotonic() - started)
    busy, machine_busy = meter.busy_percent(), meter.machine_busy_percent()
    used = meter.per_action(sum(done))
    line = cpu.described(used)
    if busy is not None and machine_busy is not None:
        line += (
            f"; these processes used {busy:.0f} % of the machine's CPU, "
            f"everything on it {machine_busy:.0f} %"
        )
    return rate, line, used.get(cpu.ENDPOINT)


def _import_noop() -> Any:
    sys.path.insert(0, str(HANDLERS))
    try:
        return importlib.import_module("noop").handler
    finally:
        sys.path.remove(str(HANDLERS))


def _with_met(figure: Figure, met: bool | None, *notes: str) -> Figure:
    return Figure(
        figure.name,
        figure.unit,
        figure.measured,
        figure.baseline,
        figure.baseline_name,
        figure.target,
        met,
        [*figure.notes, *notes],
    )
