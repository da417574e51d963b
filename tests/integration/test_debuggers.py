"""IDE debuggers in the execution environment, driven the way IDEs drive them.

debugpy: the test is VS Code. It attaches to the port the environment listens
on, speaks the Debug Adapter Protocol (initialize, attach, setBreakpoints,
configurationDone), sees the breakpoint in the handler hit, continues, and
the invocation returns normally. pydevd: the test is PyCharm's debug server.
It listens, the environment connects, and the test answers as little as
pydevd needs to run. Node: the inspector answers on its port.

Every wait is bounded, with margins far beyond what the steps take.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import socket
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bridge.environments import debuggers, interpreters
from bridge.function_settings import DebuggerKind, DebuggerSettings, FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud

STEP_SECONDS = 60.0
PAUSE_SECONDS = 2.0
TIMEOUT_SECONDS = 120
LAB_RUNTIME = interpreters.lab_interpreter().version_text
EVENTS = Path(__file__).parents[1] / "events"

HANDLER = """
import os


def handler(event, context):
    seen = event.get("n", 0) + 1  # breakpoint
    return {
        "seen": seen,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "variables": sorted(os.environ),
    }
"""

NODE_HANDLER = """
exports.handler = async (event) => ({ seen: (event.n || 0) + 1, pid: process.pid });
"""

needs_debugpy = pytest.mark.skipif(
    importlib.util.find_spec("debugpy") is None, reason="debugpy is not installed"
)
needs_pydevd = pytest.mark.skipif(
    importlib.util.find_spec("pydevd") is None, reason="pydevd is not installed"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _breakpoint_line(path: Path) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if "# breakpoint" in line)


class RecordedLog:
    """The lab's invocation lines, for the debugger's announcement."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def start(self, function: str, request_id: str, version: str) -> None:
        pass

    def line(self, function: str, request_id: str | None, text: str) -> None:
        self.lines.append(text)

    def end(self, function: str, outcome: Any, memory_mb: int) -> None:
        pass


@pytest.fixture
def log() -> RecordedLog:
    return RecordedLog()


@pytest.fixture
def serve(local_cloud: LocalCloud, log: RecordedLog) -> Iterator[Callable[..., str]]:
    """Deploy a function served from a lab with the given debugger; return its name."""
    labs: list[Lab] = []

    def start(
        code_dir: Path,
        debugger: DebuggerSettings,
        runtime: str = f"python{LAB_RUNTIME}",
        handler: str = "app.handler",
    ) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        local_cloud.create_function(name, timeout_seconds=TIMEOUT_SECONDS)
        settings = FunctionSettings(
            name, handler, code_dir, runtime=runtime, debugger=debugger
        )
        lab = Lab(
            local_cloud.clients.client("sqs"),
            local_cloud.queues,
            [settings],
            log,
            endpoint_url=local_cloud.endpoint_url,
            poll_wait_seconds=1,
            reload=False,
        )
        labs.append(lab.start())
        return name

    yield start
    for lab in labs:
        lab.stop()


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(HANDLER))
    return code


@pytest.fixture
def caller() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def _invoke_later(
    caller: ThreadPoolExecutor, local_cloud: LocalCloud, name: str, event: Any
) -> Future[Any]:
    return caller.submit(
        local_cloud.lambda_service.invoke, name, json.dumps(event).encode()
    )


def _payload(invoked: Future[Any]) -> dict[str, Any]:
    result = invoked.result(timeout=STEP_SECONDS)
    assert result.function_error is None, result.payload
    payload: dict[str, Any] = json.loads(result.payload)
    return payload


# --- debugpy ----------------------------------------------------------------


class DapClient:
    """Speaks the Debug Adapter Protocol as an IDE does, over one socket."""

    def __init__(self, port: int) -> None:
        self._socket = _connect(port)
        self._socket.settimeout(STEP_SECONDS)
        self._buffer = b""
        self._seq = 0
        self.events: list[dict[str, Any]] = []

    def request(self, command: str, **arguments: Any) -> int:
        self._seq += 1
        body = json.dumps(
            {
                "seq": self._seq,
                "type": "request",
                "command": command,
                "arguments": arguments,
            }
        ).encode()
        self._socket.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self._seq

    def wait_for(self, kind: str, name: str) -> dict[str, Any]:
        """The next event (or response) of this name; others are kept."""
        deadline = time.monotonic() + STEP_SECONDS
        while time.monotonic() < deadline:
            message = self._read()
            if message["type"] == "event":
                self.events.append(message)
            if message["type"] == kind and name in (
                message.get("event"),
                message.get("command"),
            ):
                return message
        raise AssertionError(f"no {name} {kind} within {STEP_SECONDS} s")

    def close(self) -> None:
        try:
            self.request("disconnect")
        finally:
            self._socket.close()

    def _read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        header, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = int(header.split(b":")[1])
        self._buffer = rest
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        message: dict[str, Any] = json.loads(body)
        return message

    def _receive(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise AssertionError("debugpy closed the connection")
        self._buffer += chunk


def _connect(port: int) -> socket.socket:
    """Connect once the environment listens (it starts when the invocation comes)."""
    deadline = time.monotonic() + STEP_SECONDS
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _other_python() -> str:
    for minor in range(13, 9, -1):
        if (3, minor) != interpreters.lab_interpreter().version:
            if interpreters.find_python((3, minor)) is not None:
                return f"3.{minor}"
    return ""


@needs_debugpy
@pytest.mark.parametrize(
    "version", [LAB_RUNTIME, _other_python()], ids=["lab-python", "other-python"]
)
def test_a_breakpoint_in_the_handler_stops_vs_code_and_the_invocation_returns(
    serve, code_dir, local_cloud, caller, log, version
):
    if not version:
        pytest.skip("no Python 3.10 or later besides the lab's on this machine")
    port = _free_port()
    debugger = DebuggerSettings(DebuggerKind.DEBUGPY, "127.0.0.1", port, wait=True)
    name = serve(code_dir, debugger, runtime=f"python{version}")
    handler_file = str(code_dir / "app.py")
    line = _breakpoint_line(code_dir / "app.py")

    invoked = _invoke_later(caller, local_cloud, name, {"n": 41})
    ide = DapClient(port)
    try:
        ide.request("initialize", adapterID="mless-test", pathFormat="path")
        ide.request("attach", justMyCode=True)
        ide.wait_for("event", "initialized")
        ide.request(
            "setBreakpoints",
            source={"path": handler_file},
            breakpoints=[{"line": line}],
        )
        ide.request("configurationDone")
        stopped = ide.wait_for("event", "stopped")
        thread_id = stopped["body"]["threadId"]
        ide.request("stackTrace", threadId=thread_id)
        top = ide.wait_for("response", "stackTrace")["body"]["stackFrames"][0]
        time.sleep(PAUSE_SECONDS)
        ide.request("continue", threadId=thread_id)
        payload = _payload(invoked)
    finally:
        ide.close()

    assert stopped["body"]["reason"] == "breakpoint"
    assert (top["source"]["path"], top["line"]) == (handler_file, line)
    assert payload["seen"] == 42
    assert "PYDEVD_DISABLE_FILE_VALIDATION" not in payload["variables"]
    assert not any("frozen modules" in text for text in log.lines), log.lines
    # The deadline kept running while the handler was paused.
    assert payload["remaining_ms"] <= (TIMEOUT_SECONDS - PAUSE_SECONDS) * 1000
    waiting = [text for text in log.lines if "waiting for a debugger" in text]
    assert len(waiting) == 1
    assert f"127.0.0.1:{port}" in waiting[0]
    assert "This invocation's deadline is " in waiting[0]


@needs_debugpy
def test_a_warm_environment_keeps_listening_without_waiting_again(
    serve, code_dir, local_cloud, caller, log
):
    port = _free_port()
    debugger = DebuggerSettings(DebuggerKind.DEBUGPY, "127.0.0.1", port, wait=False)
    name = serve(code_dir, debugger)

    first = _payload(_invoke_later(caller, local_cloud, name, {}))
    ide = DapClient(port)  # attaching later, to the warm environment
    try:
        ide.request("initialize", adapterID="mless-test", pathFormat="path")
        ide.request("attach", justMyCode=True)
        ide.wait_for("event", "initialized")
        ide.request("configurationDone")
        ide.wait_for("response", "attach")
        second = _payload(_invoke_later(caller, local_cloud, name, {}))
    finally:
        ide.close()

    assert second["pid"] == first["pid"]
    assert sum("attach any time" in text for text in log.lines) == 1


# --- pydevd -----------------------------------------------------------------

# pydevd's own protocol: command id, sequence number, text, tab-separated.
CMD_RUN = 101
CMD_VERSION = 501


@needs_pydevd
def test_pydevd_connects_to_the_ides_debug_server_and_the_invocation_completes(
    serve, code_dir, local_cloud, caller, log
):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(STEP_SECONDS)
    port = server.getsockname()[1]
    debugger = DebuggerSettings(DebuggerKind.PYDEVD, "127.0.0.1", port)
    name = serve(code_dir, debugger)

    invoked = _invoke_later(caller, local_cloud, name, {"n": 1})
    try:
        connection, _ = server.accept()
    finally:
        server.close()
    with connection:
        connection.settimeout(STEP_SECONDS)
        # As an IDE opens a session: who it is, then "run" (no breakpoints).
        connection.sendall(
            f"{CMD_VERSION}\t1\t1.1\tUNIX\tID\n{CMD_RUN}\t3\t\n".encode("ascii")
        )
        answer = connection.recv(65536)
    payload = _payload(invoked)

    assert answer.split(b"\t", 1)[0].isdigit(), answer[:200]
    assert payload["seen"] == 2
    assert any(f"debug server at 127.0.0.1:{port}" in text for text in log.lines)


@needs_pydevd
def test_without_a_debug_server_the_function_runs_and_says_why(
    serve, code_dir, local_cloud, caller, log
):
    port = _free_port()  # nothing listens there
    debugger = DebuggerSettings(DebuggerKind.PYDEVD, "127.0.0.1", port)
    name = serve(code_dir, debugger)

    payload = _payload(_invoke_later(caller, local_cloud, name, {"n": 1}))

    assert payload["seen"] == 2
    assert any(
        text.startswith(f"mless: connecting to 127.0.0.1:{port} failed (pydevd)")
        and text.endswith("runs without a debugger.")
        for text in log.lines
    ), log.lines


# --- Node.js ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_handler_runs_with_the_inspector_on_its_port(
    serve, tmp_path, local_cloud, caller, log
):
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text(textwrap.dedent(NODE_HANDLER))
    port = _free_port()
    debugger = DebuggerSettings(DebuggerKind.NODE_INSPECT, "127.0.0.1", port, False)
    name = serve(code, debugger, runtime="nodejs20.x", handler="index.handler")

    payload = _payload(_invoke_later(caller, local_cloud, name, {"n": 1}))
    url = f"http://127.0.0.1:{port}/json/list"
    with urllib.request.urlopen(url, timeout=STEP_SECONDS) as response:
        targets = json.load(response)

    assert payload["seen"] == 2
    assert any(target["type"] == "node" for target in targets)
    assert any(f"ws://127.0.0.1:{port}/" in text for text in log.lines)


# --- API Gateway --------------------------------------------------------------


@needs_debugpy
def test_a_debugged_function_behind_api_gateway_is_warned_about_once(
    serve, code_dir, local_cloud, caller, caplog
):
    event = json.loads((EVENTS / "api-gateway-http-payment.json").read_text())
    debugger = DebuggerSettings(DebuggerKind.DEBUGPY, "127.0.0.1", _free_port(), False)
    name = serve(code_dir, debugger)
    caplog.set_level(logging.WARNING, logger="bridge.environments.pool")

    for _ in range(2):
        _payload(_invoke_later(caller, local_cloud, name, event))

    warnings = [
        r.getMessage() for r in caplog.records if "API Gateway" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "HTTP API a1b2c3d4e5" in warnings[0] and "30 s at most" in warnings[0]
    assert "dropped without notice" in warnings[0]


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"requestContext": {"apiId": "a1", "httpMethod": "GET"}}, "REST API"),
        (
            {"version": "2.0", "requestContext": {"apiId": "a1", "http": {}}},
            "HTTP API",
        ),
        ({"requestContext": {"apiId": "a1", "connectionId": "c"}}, "WebSocket API"),
        (
            {
                "version": "2.0",
                "requestContext": {
                    "apiId": "u1",
                    "domainName": "u1.lambda-url.us-east-1.on.aws",
                    "http": {},
                },
            },
            None,
        ),
        ({"Records": [{"eventSource": "aws:s3"}]}, None),
    ],
    ids=["rest", "http", "websocket", "function-url", "s3"],
)
def test_events_through_api_gateway_are_recognised(event, kind):
    source = debuggers.api_gateway_source(event)

    assert (source.kind if source else None) == kind


def test_no_warning_when_neither_the_timeout_nor_a_debugger_outlasts_the_api():
    event = {"requestContext": {"apiId": "a1", "httpMethod": "GET"}}

    quiet = debuggers.api_gateway_warning("f", event, 10_000, debugged=False)
    loud = debuggers.api_gateway_warning("f", event, 60_000, debugged=False)

    assert quiet is None
    assert loud is not None and "(60 s)" in loud
