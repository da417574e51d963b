"""What the reliability tests share: counting executions, serving labs, faults.

Faults moto cannot produce are injected on one boto3 client only: a
`before-call` hook answers a call with an AWS error without sending it,
as botocore's Stubber does, while every other call reaches moto.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from bridge.clock import now_ms
from bridge.function_settings import FunctionSettings
from lambda_proxy import wire

HANDLERS = Path(__file__).parent / "handlers"
ACCOUNT = "123456789012"


class Executions:
    """The executions the `reliability` handlers noted in RECORD_DIR."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "executions.log"

    @property
    def environment(self) -> dict[str, str]:
        """The function variable that points the handlers here."""
        return {"RECORD_DIR": str(self.directory)}

    def lines(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        return [line.split() for line in self.path.read_text().splitlines()]

    def starts(self, event_id: str) -> list[list[str]]:
        """The start lines of one event id: [start, id, pid, request id]."""
        return [line for line in self.lines() if line[:2] == ["start", event_id]]

    def start_counts(self) -> Counter[str]:
        return Counter(line[1] for line in self.lines() if line[0] == "start")

    def wait_for_start(
        self, event_id: str, invocation: Invocation, timeout: float = 20
    ) -> list[str]:
        """The first start line of an event id, waited for while it is invoked."""
        give_up_at = time.monotonic() + timeout
        while time.monotonic() < give_up_at:
            starts = self.starts(event_id)
            if starts:
                return starts[0]
            if invocation.done:
                raise AssertionError(
                    f"the invocation ended before the handler started for "
                    f"{event_id}: {invocation.result(0).payload[:500]!r}"
                )
            time.sleep(0.05)
        raise AssertionError(f"the handler never started for {event_id}")


def deploy(
    local_cloud: Any,
    handler: str,
    *,
    timeout_seconds: int = 5,
    environment: dict[str, str] | None = None,
    concurrency: int = 4,
) -> FunctionSettings:
    """Deploy a proxy-backed function; return the lab's settings for it."""
    name = f"rel-{uuid.uuid4().hex[:12]}"
    local_cloud.create_function(
        name, timeout_seconds=timeout_seconds, environment=environment
    )
    return FunctionSettings(name, handler, HANDLERS, concurrency=concurrency)


class Invocation:
    """One invocation made on a thread of its own."""

    def __init__(self, local_cloud: Any, name: str, event: dict[str, Any]) -> None:
        self._event = event
        self._result: list[Any] = []
        self._thread = threading.Thread(
            target=lambda: self._result.append(
                local_cloud.lambda_service.invoke(name, json.dumps(event).encode())
            ),
            daemon=True,
        )
        self._thread.start()

    @property
    def done(self) -> bool:
        return bool(self._result)

    def result(self, timeout: float) -> Any:
        """The InvokeResult, waited for."""
        self._thread.join(timeout)
        assert self._result, f"the invocation with {self._event} is still running"
        return self._result[0]


def invoke_in_background(
    local_cloud: Any, name: str, event: dict[str, Any]
) -> Invocation:
    """Invoke on a thread; the Invocation returned waits for the InvokeResult."""
    return Invocation(local_cloud, name, event)


def a_request(
    settings: FunctionSettings,
    event: Any,
    *,
    reply_to: str | None,
    mode: str = "sync",
    deadline_in_ms: int = 10_000,
    environment: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> wire.Request:
    """A request envelope as the proxy would send it, built by the test."""
    name = settings.name
    return {
        "v": wire.FORMAT_VERSION,
        "kind": "request",
        "correlation_id": wire.new_correlation_id(),
        "request_id": str(uuid.uuid4()),
        "function": {
            "name": name,
            "version": "$LATEST",
            "invoked_arn": f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}",
            "memory_mb": 128,
            "timeout_ms": 10_000,
            "region": region,
            "log_group": f"/aws/lambda/{name}",
            "log_stream": "2026/01/01/[$LATEST]0",
        },
        "deadline_ms": now_ms() + deadline_in_ms,
        "sent_at_ms": now_ms(),
        "event": event,
        "client_context": None,
        "identity": None,
        "trace_id": None,
        "tenant_id": None,
        "environment": dict(environment or {}),
        "credentials": {
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "session_token": None,
        },
        "mode": mode,
        "reply_to": reply_to,
    }


def create_reply_queue(sqs: Any, prefix: str) -> str:
    """A queue named as the proxy names its reply queues."""
    return str(sqs.create_queue(QueueName=f"{prefix}{uuid.uuid4().hex}")["QueueUrl"])


def read_envelopes(
    sqs: Any,
    queue_url: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 15,
) -> list[dict[str, Any]]:
    """Receive and delete envelopes until `until(all so far)` holds, or time is up."""
    envelopes: list[dict[str, Any]] = []
    give_up_at = time.monotonic() + timeout
    while not until(envelopes) and time.monotonic() < give_up_at:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            envelopes.append(json.loads(message["Body"]))
            sqs.delete_message(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    return envelopes


def replies(envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [envelope for envelope in envelopes if envelope["kind"] == "reply"]


def messages_in(sqs: Any, queue_url: str) -> int:
    """Messages in a queue, visible or not."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    give_up_at = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up_at:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


class Faults:
    """Makes some calls of one boto3 client fail with an AWS error while on."""

    def __init__(
        self,
        client: Any,
        code: str,
        status: int,
        operations: set[str] | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.operations = operations
        self.on = False
        self.once = False
        self.injected = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-call", self._answer)

    def _answer(self, model: Any, **kwargs: Any) -> Any:
        with self._lock:
            if not self.on:
                return None
            if self.operations is not None and model.name not in self.operations:
                return None
            self.injected += 1
            if self.once:
                self.on = False
        error = {
            "Error": {"Code": self.code, "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return AWSResponse("", self.status, {}, None), error


class Relay:
    """A TCP relay on loopback to another port, which the test can take down."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            # Closing alone would leave a thread blocked in accept() holding
            # the socket open; shutting it down wakes that thread.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for connection in connections:
            _close(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    return
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
