"""Fixtures for tests against moto's server, run as a child process on loopback."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.console import report_line
from bridge.environments.process import Outcome
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud, MotoServer

REGION = "us-east-1"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Yield the URL of a moto server that lives for the whole test session."""
    server = MotoServer()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_client(moto_endpoint: str) -> Callable[..., Any]:
    """Return a factory of boto3 clients bound to the moto server.

    `moto_client("sqs")` is an SQS client in us-east-1; pass `region=` for
    another region. The clients carry fake credentials of their own.
    """

    def make(service: str, region: str = REGION) -> Any:
        return boto3.client(
            service, endpoint_url=moto_endpoint, region_name=region, **FAKE_CREDENTIALS
        )

    return make


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto3 at fake credentials, so no test can reach a real account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


# The lab's side: a local cloud on the session's moto server, and one lab per
# test serving the functions the test deploys.

HANDLERS_DIR = Path(__file__).parent / "handlers"


class RecordingLog:
    """An invocation log that keeps every line, by request id, for assertions."""

    def __init__(self) -> None:
        self._lines: list[tuple[str | None, str]] = []
        self._lock = threading.Lock()

    def start(self, function: str, request_id: str, version: str) -> None:
        self._add(request_id, f"START RequestId: {request_id} Version: {version}")

    def line(self, function: str, request_id: str | None, text: str) -> None:
        self._add(request_id, text)

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        self._add(outcome.request_id, f"END RequestId: {outcome.request_id}")
        self._add(outcome.request_id, report_line(outcome, memory_mb))

    def lines_of(self, request_id: str) -> list[str]:
        with self._lock:
            return [text for owner, text in self._lines if owner == request_id]

    def _add(self, request_id: str | None, text: str) -> None:
        with self._lock:
            self._lines.append((request_id, text))


@pytest.fixture(scope="session")
def local_cloud(moto_endpoint: str) -> Iterator[LocalCloud]:
    """The mless stack deployed on the session's moto server, with Lambda's stand-in."""
    cloud = LocalCloud(endpoint_url=moto_endpoint)
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture
def lab_log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def deployed_function(
    local_cloud: LocalCloud, lab_log: RecordingLog
) -> Iterator[Callable[..., str]]:
    """Deploy a function whose handler lives in tests/integration/handlers.

    Returns its name. A lab serving every function the test deployed runs
    until the test ends.
    """
    functions: list[FunctionSettings] = []
    labs: list[Lab] = []

    def deploy(
        handler: str,
        *,
        timeout_seconds: int = 3,
        environment: dict[str, str] | None = None,
        concurrency: int = 10,
        code_dir: Path = HANDLERS_DIR,
    ) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        local_cloud.create_function(
            name, timeout_seconds=timeout_seconds, environment=environment
        )
        functions.append(
            FunctionSettings(name, handler, code_dir, concurrency=concurrency)
        )
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

    yield deploy
    for lab in labs:
        lab.stop()
