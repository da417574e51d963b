"""The load run: many invocations at once through the bridge, each accounted for.

Every invocation takes the real path: the local cloud's Lambda stand-in runs
the deployed proxy, which sends the request over SQS; the lab runs the
handler and replies. The handler (`reliability.record` in
tests/integration/handlers) notes each execution by the event's unique id in
a file, and answers with that id. Counted:

- lost: an invocation that got no successful reply;
- misrouted: a reply that carries another invocation's id;
- double-executed: an id the handler ran more than once.

`python -m bench.load` runs 1,000 invocations at 32 concurrent on an embedded
local cloud, prints the figures and writes them into docs/reliability.md.
The test suite runs a smaller load with `run_load`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.environments.process import Outcome
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud
from bridge.poller import PollerStats

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ROOT / "tests" / "integration" / "handlers"
REPORT = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- load figures: begin -->", "<!-- load figures: end -->"
# Generous: under load on two cores a cold proxy and a cold environment can
# take seconds; the count of invocations that missed it is a figure itself.
FUNCTION_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class LoadFigures:
    """What one load run measured."""

    invocations: int
    concurrency: int
    lost: int
    misrouted: int
    double_executed: int
    errors: dict[str, int]
    seconds: float
    latency_p50_ms: float
    latency_p99_ms: float
    poller: PollerStats

    @property
    def per_second(self) -> float:
        return self.invocations / self.seconds


class _Silent:
    """An invocation log that keeps nothing: the figures are the output."""

    def start(self, function: str, request_id: str, version: str) -> None:
        pass

    def line(self, function: str, request_id: str | None, text: str) -> None:
        pass

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        pass


def run_load(
    cloud: LocalCloud, invocations: int, concurrency: int, record_dir: Path
) -> LoadFigures:
    """Invoke a function `invocations` times, `concurrency` at once, and count."""
    name = f"load-{uuid.uuid4().hex[:8]}"
    cloud.create_function(
        name,
        timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
        environment={"RECORD_DIR": str(record_dir)},
    )
    settings = FunctionSettings(
        name, "reliability.record", HANDLERS, concurrency=concurrency
    )
    ids = [f"{index}-{uuid.uuid4().hex}" for index in range(invocations)]
    lab = Lab(
        cloud.clients.client("sqs"),
        cloud.queues,
        [settings],
        _Silent(),
        endpoint_url=cloud.endpoint_url,
        poll_wait_seconds=1,
    )
    with lab:
        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as callers:
            answers = list(callers.map(lambda i: _invoke(cloud, name, i), ids))
        seconds = time.monotonic() - started
        poller = lab.poller.stats()
    return _count(ids, answers, _executions(record_dir), seconds, concurrency, poller)


def _invoke(cloud: LocalCloud, name: str, event_id: str) -> tuple[float, Any]:
    started = time.monotonic()
    result = cloud.lambda_service.invoke(name, json.dumps({"id": event_id}).encode())
    return (time.monotonic() - started) * 1000, result


def _executions(record_dir: Path) -> Counter[str]:
    path = record_dir / "executions.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(line.split()[1] for line in lines if line.startswith("start "))


def _count(
    ids: list[str],
    answers: list[tuple[float, Any]],
    executions: Counter[str],
    seconds: float,
    concurrency: int,
    poller: PollerStats,
) -> LoadFigures:
    lost: set[str] = set()
    misrouted = 0
    errors: Counter[str] = Counter()
    for event_id, (_, result) in zip(ids, answers, strict=True):
        payload = json.loads(result.payload)
        if result.function_error is not None:
            lost.add(event_id)
            errors[payload.get("errorType", "?")] += 1
        elif payload.get("id") != event_id:
            misrouted += 1
    lost.update(event_id for event_id in ids if executions[event_id] == 0)
    latencies = sorted(latency for latency, _ in answers)
    return LoadFigures(
        invocations=len(ids),
        concurrency=concurrency,
        lost=len(lost),
        misrouted=misrouted,
        double_executed=sum(1 for count in executions.values() if count > 1),
        errors=dict(errors),
        seconds=seconds,
        latency_p50_ms=statistics.median(latencies),
        latency_p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        poller=poller,
    )


def report(figures: LoadFigures) -> str:
    """The figures as the Markdown that docs/reliability.md shows."""
    poller = figures.poller
    return "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} with `python -m bench.load` on "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{platform.system()}; moto's server as the endpoint.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| invocations, concurrent | {figures.invocations}, "
            f"{figures.concurrency} |",
            f"| lost | {figures.lost} |",
            f"| misrouted | {figures.misrouted} |",
            f"| double-executed | {figures.double_executed} |",
            f"| errors by type | {figures.errors or 'none'} |",
            f"| wall time | {figures.seconds:.1f} s |",
            f"| throughput | {figures.per_second:.1f} invocations/s |",
            f"| latency p50 / p99 | {figures.latency_p50_ms:.0f} ms / "
            f"{figures.latency_p99_ms:.0f} ms |",
            f"| messages received by the lab | {poller.received} |",
            f"| second copies held / dropped / answered again | "
            f"{poller.held_copies} / {poller.dropped_copies} / "
            f"{poller.resent_replies} |",
        ]
    )


def write_report(text: str, path: Path = REPORT) -> None:
    """Put the figures between the markers of the reliability notes."""
    document = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(document):
        raise SystemExit(f"{path} lacks the markers {BEGIN} and {END}")
    replaced = pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", document)
    path.write_text(replaced, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--invocations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the docs alone"
    )
    options = parser.parse_args(argv)
    with LocalCloud() as cloud, tempfile.TemporaryDirectory() as record_dir:
        figures = run_load(
            cloud, options.invocations, options.concurrency, Path(record_dir)
        )
    text = report(figures)
    print(text)
    print(json.dumps(dataclasses.asdict(figures)))
    if not options.no_write:
        write_report(text)
    failed = figures.lost or figures.misrouted or figures.double_executed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
