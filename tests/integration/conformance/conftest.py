"""Fixtures for the conformance suite: functions deployed on the local cloud.

Every case runs through the whole bridge: the Lambda stand-in invokes the
deployed proxy, which sends the request over SQS to a lab that runs the
handler from `handlers/` (or a code directory the test writes) and replies.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.console import report_line
from bridge.environments.process import Outcome
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.lambda_service import InvokeResult
from bridge.local_cloud import LocalCloud

HANDLERS = Path(__file__).parent / "handlers"
EVENTS = Path(__file__).parents[2] / "events"
REPORT_WAIT_SECONDS = 10.0
# Longer than Lambda's default 3 s: a cold start on a busy machine (a new
# interpreter, the proxy's own cold start) must not end a case early.
DEFAULT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Invoked:
    """What the caller of Invoke received, parsed when it is JSON."""

    result: InvokeResult

    @property
    def body(self) -> Any:
        return json.loads(self.result.payload)

    @property
    def function_error(self) -> str | None:
        return self.result.function_error


class ConformanceLog:
    """The lab's invocation log, kept by request id, as CloudWatch would show it."""

    def __init__(self) -> None:
        self._lines: list[tuple[str | None, str]] = []
        self._lock = threading.Lock()
        self.request_ids: list[str] = []
        self.outcomes: dict[str, Outcome] = {}

    def start(self, function: str, request_id: str, version: str) -> None:
        self.request_ids.append(request_id)
        self._add(request_id, f"START RequestId: {request_id} Version: {version}")

    def line(self, function: str, request_id: str | None, text: str) -> None:
        self._add(request_id, text)

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        self.outcomes[outcome.request_id] = outcome
        self._add(outcome.request_id, f"END RequestId: {outcome.request_id}")
        self._add(outcome.request_id, report_line(outcome, memory_mb))

    def lines_of(self, request_id: str | None) -> list[str]:
        """Every line of one invocation; None gives init's output."""
        with self._lock:
            return [text for owner, text in self._lines if owner == request_id]

    @property
    def last_request_id(self) -> str:
        return self.request_ids[-1]

    def report_of(self, request_id: str) -> str:
        """The REPORT line of one invocation, waiting a little for it.

        The caller may have its answer before the lab writes REPORT: at a
        timeout, Lambda's stand-in answers while the lab stops the handler.
        """
        deadline = time.monotonic() + REPORT_WAIT_SECONDS
        while True:
            reports = [
                line for line in self.lines_of(request_id) if line.startswith("REPORT ")
            ]
            if reports or time.monotonic() > deadline:
                (report,) = reports
                return report
            time.sleep(0.05)

    def output_of(self, request_id: str) -> list[str]:
        """The lines between START and END: what the handler wrote."""
        return self.lines_of(request_id)[1:-2]

    def _add(self, request_id: str | None, text: str) -> None:
        with self._lock:
            self._lines.append((request_id, text))


@pytest.fixture
def lab_log() -> ConformanceLog:
    return ConformanceLog()


@pytest.fixture
def deploy(
    local_cloud: LocalCloud, lab_log: ConformanceLog
) -> Iterator[Callable[..., str]]:
    """Deploy a proxy-backed function and serve it from a lab; returns its name.

    Keyword arguments: `code_dir` (default `handlers/`), `timeout_seconds`,
    `memory_mb` and `environment` of the deployed function, and any other
    FunctionSettings field of the lab's side (runtime, layers, concurrency).
    """
    functions: list[FunctionSettings] = []
    labs: list[Lab] = []

    def deploy_one(
        handler: str,
        *,
        code_dir: Path = HANDLERS,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        memory_mb: int = 128,
        environment: dict[str, str] | None = None,
        **settings: Any,
    ) -> str:
        name = f"conformance-{uuid.uuid4().hex[:12]}"
        local_cloud.create_function(
            name,
            timeout_seconds=timeout_seconds,
            memory_mb=memory_mb,
            environment=environment,
        )
        functions.append(FunctionSettings(name, handler, code_dir, **settings))
        for lab in labs:
            lab.stop()
        labs[:] = [
            Lab(
                local_cloud.clients.client("sqs"),
                local_cloud.queues,
                functions,
                lab_log,
                endpoint_url=local_cloud.endpoint_url,
                poll_wait_seconds=1,
            ).start()
        ]
        return name

    yield deploy_one
    for lab in labs:
        lab.stop()


@pytest.fixture
def invoke(local_cloud: LocalCloud) -> Callable[..., Invoked]:
    """Invoke a function synchronously as a caller of Lambda's Invoke API would.

    `event` is the name of a file under tests/events or a JSON-able value;
    `client_context` is a dict sent as Invoke's ClientContext.
    """

    def invoke_one(
        function_name: str,
        event: Any = None,
        *,
        client_context: dict[str, Any] | None = None,
    ) -> Invoked:
        if isinstance(event, str) and event.endswith(".json"):
            payload = (EVENTS / event).read_bytes()
        else:
            payload = json.dumps({} if event is None else event).encode("utf-8")
        encoded_context = None
        if client_context is not None:
            encoded_context = base64.b64encode(
                json.dumps(client_context).encode("utf-8")
            ).decode("ascii")
        return Invoked(
            local_cloud.lambda_service.invoke(
                function_name, payload, client_context=encoded_context
            )
        )

    return invoke_one


def code_dir_with(root: Path, files: dict[str, str]) -> Path:
    """Write a function's code directory: relative path -> source text."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
