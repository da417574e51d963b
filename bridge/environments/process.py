"""One execution environment: a child process serving one function's invocations.

The parent side of docs/execution-environment-protocol.md. The child imports
the handler once (init) and then runs one invocation at a time; this object
starts it, hands it invocations, streams its output lines to a sink with the
request id they belong to, and enforces the deadline. A child that runs past
its deadline or dies is finished: the pool replaces it, and since the child
answers only on its own pipe, a late result can never reach another caller.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# How long to wait for the last output of an invocation once its result is in;
# the child writes the sentinel before the result, so this is only a bound.
OUTPUT_DRAIN_SECONDS = 2.0

# Lambda's limit on the response of a synchronous invocation: 6 MiB and 100
# bytes, checked by the platform once the runtime has posted it.
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024 + 100

# Put on the message queue when the child's control pipe closes.
_CHILD_EXITED: dict[str, Any] = {"type": "exited"}

OutputSink = Callable[[str | None, str], None]
"""Receives (request id or None during init, one line of the handler's output)."""


@dataclass(frozen=True)
class Invocation:
    """What the environment needs to run one invocation."""

    request_id: str
    invoked_function_arn: str
    deadline_ms: int
    timeout_ms: int
    event_json: str
    client_context_json: str | None = None
    identity_json: str | None = None
    trace_id: str | None = None
    tenant_id: str | None = None
    environment: Mapping[str, str] | None = None
    # Lambda starts an invocation's clock once init is done; the lab cannot,
    # since its deadline is the proxy's, already running.
    deadline_after_init: bool = False


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended, with what Lambda's REPORT line shows."""

    request_id: str
    status: str  # "success", "error", "timeout" or "crash"
    payload: str | None = None
    # The bytes a handler returned, which Lambda passes through raw.
    raw_payload: bytes | None = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    max_memory_mb: int = 0

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else self.error.get("errorType")


class ExecutionEnvironment:
    """A warm child process for one function; call `invoke` from one thread."""

    def __init__(
        self,
        command: Sequence[str],
        environment: Mapping[str, str],
        code_dir: str,
        sink: OutputSink,
    ) -> None:
        self._sentinel = secrets.token_hex(16)
        self._sink = sink
        self._request_id: str | None = None
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._drained = threading.Event()
        self._drained.set()
        self.init_duration_ms: float | None = None
        self.init_error: dict[str, Any] | None = None
        self.max_memory_mb = 0
        self._closed = False
        self._closing = threading.Lock()
        self._spawn(command, environment, code_dir)

    def _spawn(
        self, command: Sequence[str], environment: Mapping[str, str], code_dir: str
    ) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        output_r, output_w = os.pipe()
        args = [*command[:2], str(to_child_r), str(from_child_w), self._sentinel]
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(
            [*args, *command[2:]],
            env=dict(environment),
            cwd=code_dir,
            stdin=subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            pass_fds=(to_child_r, from_child_w),
            start_new_session=True,
        )
        for fd in (to_child_r, from_child_w, output_w):
            os.close(fd)
        # Written without blocking, so that a send can give up at a deadline.
        os.set_blocking(self._to_child, False)
        self._drained.clear()
        threading.Thread(
            target=self._read_output, args=(output_r,), daemon=True
        ).start()
        threading.Thread(target=self._read_messages, daemon=True).start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the child can serve another invocation.

        A runtime may exit right after answering (Node.js does after an
        uncaught exception), so the process itself is asked.
        """
        return not self._closed and self._process.poll() is None

    def wait_ready(self, deadline_ms: int) -> bool:
        """Wait for init to finish; False when it failed (see `init_error`)."""
        message = self._next_message(deadline_ms)
        if message is None or message.get("type") != "ready":
            self.init_duration_ms = (time.monotonic() - self.started_at) * 1000
            self.init_error = self._init_failure(message)
            self.close()
            return False
        self.init_duration_ms = float(message.get("init_duration_ms", 0.0))
        # Init's output ends with a sentinel too, so none of it is taken for
        # the first invocation's.
        self._drained.wait(OUTPUT_DRAIN_SECONDS)
        return True

    def invoke(self, invocation: Invocation) -> Outcome:
        """Run one invocation and return how it ended; never raises for the child."""
        self._request_id = invocation.request_id
        self._drained.clear()
        started = time.monotonic()
        sent = self._send(
            _invoke_message(invocation),
            _event_body(invocation.event_json),
            invocation.deadline_ms,
        )
        message = self._next_message(invocation.deadline_ms) if sent else None
        duration_ms = (time.monotonic() - started) * 1000
        if message is None or message is _CHILD_EXITED:
            timed_out = message is None
            return self._ended_early(invocation, duration_ms, timed_out)
        self._drained.wait(OUTPUT_DRAIN_SECONDS)
        self.max_memory_mb = max(
            self.max_memory_mb, message.get("max_rss_kb", 0) // 1024
        )
        body: bytes = message.get("body", b"")
        error = message.get("error") or _response_size_error(len(body))
        raw = message.get("payload_is_bytes") is True
        return Outcome(
            request_id=invocation.request_id,
            status="error" if error else "success",
            payload=None if error or raw else body.decode("utf-8", "replace"),
            raw_payload=body if raw and not error else None,
            error=error,
            duration_ms=duration_ms,
            max_memory_mb=self.max_memory_mb,
        )

    def _init_failure(self, message: dict[str, Any] | None) -> dict[str, Any]:
        if message is None:
            return {
                "errorType": "Sandbox.Timedout",
                "errorMessage": "Init did not finish before the invocation's deadline",
            }
        # After init_error or an exit, the child is ending: its status tells.
        status = self._exit_status()
        return message.get("error") or _exit_error("", status)

    def _ended_early(
        self, invocation: Invocation, duration_ms: float, timed_out: bool
    ) -> Outcome:
        """The child timed out or died: stop it and describe it as Lambda does."""
        if timed_out:
            self._measure_peak_memory()
        status = None if timed_out else self._exit_status()
        self.close()
        self._drained.wait(OUTPUT_DRAIN_SECONDS)
        request_id = invocation.request_id
        if timed_out:
            seconds = invocation.timeout_ms / 1000
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out "
                f"after {seconds:.2f} seconds",
            }
            return Outcome(
                request_id,
                "timeout",
                error=error,
                duration_ms=float(invocation.timeout_ms),
                max_memory_mb=self.max_memory_mb,
            )
        error = _exit_error(request_id, status)
        return Outcome(
            request_id,
            "crash",
            error=error,
            duration_ms=duration_ms,
            max_memory_mb=self.max_memory_mb,
        )

    def _measure_peak_memory(self) -> None:
        """Read the running child's peak memory, which it cannot report itself."""
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_mb = int(line.split()[1]) // 1024
                        self.max_memory_mb = max(self.max_memory_mb, peak_mb)
        except (OSError, ValueError):
            pass  # no /proc (macOS): the last measure stands

    def close(self) -> None:
        """Stop the child (and anything it started) at once; safe to call again."""
        # Killed before the lock is taken: a send waiting on a full pipe
        # holds it, and the child's end then fails that send at once.
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with self._closing:
            if self._closed:
                return
            self._closed = True
            # Closed once only: a second close could hit the same number
            # reused by another thread for another file.
            os.close(self._to_child)
        self._process.wait()

    def _send(self, message: dict[str, Any], body: bytes, deadline_ms: int) -> bool:
        """Write a message and its body; False when the deadline came first.

        A child that stops reading (a Node.js handler's leftover work can
        block its event loop between invocations) must not hold the parent
        past the deadline, so the pipe is written without blocking.
        """
        header = {**message, "body_bytes": len(body)} if body else message
        data = memoryview((json.dumps(header) + "\n").encode("ascii") + body)
        with self._closing:
            if self._closed:
                return True  # _next_message sees the pipe's end
            with selectors.DefaultSelector() as selector:
                selector.register(self._to_child, selectors.EVENT_WRITE)
                while data:
                    try:
                        data = data[os.write(self._to_child, data) :]
                        continue
                    except BlockingIOError:
                        pass  # the pipe is full: wait until the child reads
                    except OSError:
                        return True  # the child is gone; _next_message sees it
                    left = deadline_ms / 1000 - time.time()
                    if left <= 0:
                        return False
                    selector.select(left)
        return True

    def _next_message(self, deadline_ms: int) -> dict[str, Any] | None:
        """The child's next message, _CHILD_EXITED, or None at the deadline."""
        timeout = max(0.0, deadline_ms / 1000 - time.time())
        try:
            return self._messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def _exit_status(self) -> int | None:
        try:
            return self._process.wait(timeout=OUTPUT_DRAIN_SECONDS)
        except subprocess.TimeoutExpired:
            return None

    def _read_messages(self) -> None:
        with os.fdopen(self._from_child, "rb") as control:
            for line in control:
                try:
                    message = json.loads(line)
                    size = int(message.get("body_bytes", 0))
                except (ValueError, TypeError, AttributeError):
                    logger.warning(
                        "Ignored a malformed line from environment %s", self.pid
                    )
                    continue
                message["body"] = control.read(size) if size > 0 else b""
                self._messages.put(message)
        self._messages.put(_CHILD_EXITED)

    def _read_output(self, fd: int) -> None:
        marker = f"\x1e{self._sentinel}\x1e".encode("ascii")
        pending = b""
        with os.fdopen(fd, "rb", buffering=0) as output:
            while chunk := output.read(65536):
                pending = self._emit_lines(pending + chunk, marker)
        if pending:
            self._emit(pending)
        self._drained.set()

    def _emit_lines(self, data: bytes, marker: bytes) -> bytes:
        """Send every complete line to the sink; return what is left over."""
        while True:
            cut = data.find(marker)
            head = data if cut < 0 else data[:cut]
            *lines, rest = head.split(b"\n")
            for line in lines:
                self._emit(line)
            if cut < 0:
                # Keep a possible start of the marker for the next chunk.
                return rest
            if rest:
                self._emit(rest)
            data = data[cut + len(marker) :]
            self._drained.set()

    def _emit(self, line: bytes) -> None:
        self._sink(self._request_id, line.decode("utf-8", errors="replace"))


def _invoke_message(invocation: Invocation) -> dict[str, Any]:
    return {
        "type": "invoke",
        "request_id": invocation.request_id,
        "invoked_function_arn": invocation.invoked_function_arn,
        "deadline_ms": invocation.deadline_ms,
        "timeout_ms": invocation.timeout_ms,
        "client_context": invocation.client_context_json,
        "identity": invocation.identity_json,
        "trace_id": invocation.trace_id,
        "tenant_id": invocation.tenant_id,
        "environment": dict(invocation.environment or {}),
    }


def _event_body(event_json: str) -> bytes:
    """The event's JSON text as the invoke message's body, in UTF-8."""
    try:
        return event_json.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate can stand only inside a JSON string, where
        # backslashreplace writes the very escape JSON reads back as it.
        return event_json.encode("utf-8", "backslashreplace")


def _response_size_error(size: int) -> dict[str, Any] | None:
    """Lambda's error for a response over its limit, or None when it fits."""
    if size <= RESPONSE_LIMIT_BYTES:
        return None
    return {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": f"Response payload size ({size} bytes) exceeded maximum "
        f"allowed payload size ({RESPONSE_LIMIT_BYTES} bytes).",
    }


def _exit_error(request_id: str, status: int | None) -> dict[str, Any]:
    """Lambda's error for a runtime process that exited during an invocation."""
    if status == 0:
        reason = "Runtime exited without providing a reason"
    elif status is not None and status < 0:
        reason = f"Runtime exited with error: signal: {_signal_name(-status)}"
    else:
        reason = f"Runtime exited with error: exit status {status}"
    return {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: {reason}",
    }


# Lambda's platform is written in Go and names signals as Go does on Linux.
_GO_SIGNAL_NAMES = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
}


def _signal_name(number: int) -> str:
    try:
        known = signal.Signals(number)
    except ValueError:
        return f"signal {number}"
    return _GO_SIGNAL_NAMES.get(known, known.name.lower())
