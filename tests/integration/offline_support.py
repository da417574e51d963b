"""What the offline and library-mode tests share: labs they start and stop, traces.

Every lab here is stopped by the end of its test (`Labs.stop_all`), so its
heartbeat says "stopped" before the next test starts its own lab.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.environments.process import Outcome
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud
from lambda_proxy import wire
from lambda_proxy.presence import LabPresence, Presence

HANDLERS = Path(__file__).parent / "handlers"
# A heartbeat goes stale after OFFLINE_AFTER_SECONDS; one a killed lab left
# behind in an earlier test is stale well within this.
PRESENCE_WAIT_SECONDS = 15.0


class Executions:
    """The executions the `offline` handlers noted: [event id, where] per line."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "executions.log"

    @property
    def environment(self) -> dict[str, str]:
        return {"RECORD_DIR": str(self.directory)}

    def lines(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        return [line.split() for line in self.path.read_text().splitlines()]

    def where(self, event_id: str) -> list[str]:
        """Where each execution of one event ran, in order: "aws" or "lab"."""
        return [line[1] for line in self.lines() if line[0] == event_id]

    def wait_for(self, event_id: str, where: str, timeout: float = 20) -> None:
        wait_until(lambda: where in self.where(event_id), timeout, f"{event_id}")


class NotedLog:
    """An invocation log that keeps the lab's notes and each outcome's mode."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.modes: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, function: str, request_id: str, version: str) -> None:
        pass

    def line(self, function: str, request_id: str | None, text: str) -> None:
        pass

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        pass

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(text)

    def on_outcome(self, request: wire.Request, outcome: Outcome) -> None:
        with self._lock:
            self.modes[request["request_id"]] = request["mode"]


class Labs:
    """Starts labs on the local cloud for one test; `stop_all` stops them."""

    def __init__(self, local_cloud: LocalCloud) -> None:
        self._cloud = local_cloud
        self._running: list[Lab] = []
        self.log = NotedLog()

    def start(self, functions: list[FunctionSettings], **options: Any) -> Lab:
        lab = Lab(
            self._cloud.clients.client("sqs"),
            self._cloud.queues,
            functions,
            self.log,
            endpoint_url=self._cloud.endpoint_url,
            poll_wait_seconds=1,
            on_outcome=self.log.on_outcome,
            reload=False,
            **options,
        ).start()
        self._running.append(lab)
        return lab

    def stop(self, lab: Lab) -> None:
        lab.stop(grace_seconds=5)
        self._running.remove(lab)

    def stop_all(self) -> None:
        for lab in list(self._running):
            self.stop(lab)


def deploy(local_cloud: LocalCloud, executions: Executions, **options: Any) -> str:
    """Deploy a proxy-backed function that notes its executions; return its name."""
    name = f"offline-{uuid.uuid4().hex[:12]}"
    environment = {**executions.environment, **options.pop("environment", {})}
    local_cloud.create_function(name, environment=environment, **options)
    return name


def settings(name: str, handler: str = "offline.record", **options: Any) -> Any:
    """The lab's settings for a function whose code is in tests/integration/handlers."""
    return FunctionSettings(name, handler, HANDLERS, **options)


def presence_of(local_cloud: LocalCloud) -> Presence:
    """The lab's presence as a proxy would read it now, with nothing cached."""
    s3 = local_cloud.clients.client("s3")
    return LabPresence(local_cloud.stack.payload_bucket_name, s3).read().presence


def wait_for_presence(local_cloud: LocalCloud, presence: Presence) -> None:
    wait_until(
        lambda: presence_of(local_cloud) is presence,
        PRESENCE_WAIT_SECONDS,
        f"the lab to be {presence.value}",
    )


def invoke(local_cloud: LocalCloud, name: str, event: Any) -> tuple[Any, float]:
    """Invoke synchronously; return Lambda's answer and how long it took, in s."""
    started = time.monotonic()
    result = local_cloud.lambda_service.invoke(name, json.dumps(event).encode())
    return result, time.monotonic() - started


def invoke_in_background(
    local_cloud: LocalCloud, name: str, event: Any
) -> Callable[[float], tuple[Any, float]]:
    """Invoke on a thread; return a function that waits for `invoke`'s answer."""
    answers: list[tuple[Any, float]] = []
    thread = threading.Thread(
        target=lambda: answers.append(invoke(local_cloud, name, event)), daemon=True
    )
    thread.start()

    def wait(timeout: float) -> tuple[Any, float]:
        thread.join(timeout)
        assert answers, f"the invocation with {event} did not return in {timeout} s"
        return answers[0]

    return wait


def waiting_requests(local_cloud: LocalCloud) -> int:
    attributes = local_cloud.clients.client("sqs").get_queue_attributes(
        QueueUrl=local_cloud.queues.request_queue_url,
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    give_up_at = time.monotonic() + timeout
    while time.monotonic() < give_up_at:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what} after {timeout} s")
