"""The proxy function: forward one invocation to the lab, answer as its handler did.

Stages of one invocation:

1. build the request envelope from the event, the context and this
   function's environment (its own variables and its role's credentials);
2. send it to the request queue;
3. wait on this environment's reply queue for the reply with the same
   correlation id (see `replies` for why that reaches only this caller);
4. return the handler's payload byte for byte, or raise an error whose type
   name and message are the handler's, so Lambda reports the same errorType.

That is the `sync` route. The function's mode (MLESS_MODE: sync, async,
mirror or auto, the default) and the lab's heartbeat choose the route of
each invocation (see `presence`): the request may also be queued for the lab
with nobody waiting (`async`: the proxy returns null at once, or HTTP 202 to
an HTTP event), the function's own handler may run here while the lab gets
a copy (`mirror`, with the handler MLESS_ORIGINAL_HANDLER names), or, in
auto mode while the lab is offline, a caller that waits for an answer gets
one at once: `Mless.LabOffline`, or an HTTP 503 response to an HTTP event.

Time runs out in two ways that the caller can tell apart. If the lab never
answers, the proxy raises `Mless.LabTimeout` shortly before its deadline. If
the lab acked and the handler is still running at the deadline, the proxy
does nothing more, so Lambda ends it with its own `Sandbox.Timedout` error,
exactly as if the handler had run in Lambda.

Configuration comes from environment variables set by the stack:
MLESS_REQUEST_QUEUE_URL, MLESS_REPLY_QUEUE_PREFIX and MLESS_PAYLOAD_BUCKET
(where envelopes too large for one SQS message travel, see `payloads`).
"""

from __future__ import annotations

import base64
import importlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import boto3

from lambda_proxy import wire
from lambda_proxy.event_sources import (
    HTTP_SOURCES,
    EventSource,
    event_source,
    http_response,
)
from lambda_proxy.payloads import PayloadStore
from lambda_proxy.presence import (
    LabPresence,
    Mode,
    Route,
    Sighting,
    choose_route,
    offline_message,
)
from lambda_proxy.replies import LabTimeoutError, ReplyQueue

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]

# The proxy gives up on a silent lab this long before its deadline, leaving
# time to raise its own error before Lambda's timeout would hide it.
LAB_ANSWER_MARGIN_MS = 500
# While the lab has not taken a request, the proxy looks at its heartbeat this
# often: whole-second long polls of the reply queue, and a little to spare.
PRESENCE_CHECK_MS = 2050

# Variables that Lambda's platform and runtime set; everything else in the
# proxy's environment is the function's own configuration.
_RUNTIME_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "_AWS_XRAY_DAEMON_ADDRESS",
        "_AWS_XRAY_DAEMON_PORT",
        "_LAMBDA_TELEMETRY_LOG_FD",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_DAEMON_ADDRESS",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "LANG",
        "LD_LIBRARY_PATH",
        "NODE_PATH",
        "PATH",
        "PWD",
        "PYTHONPATH",
        "SHLVL",
        "TZ",
    }
)
_OWN_VARIABLE_PREFIX = "MLESS_"


class _Proxy:
    """What one proxy execution environment keeps between invocations."""

    def __init__(self) -> None:
        self.request_queue_url = os.environ["MLESS_REQUEST_QUEUE_URL"]
        self.reply_queue_prefix = os.environ["MLESS_REPLY_QUEUE_PREFIX"]
        self.sqs = boto3.client("sqs")
        self.payloads = PayloadStore(os.environ.get("MLESS_PAYLOAD_BUCKET"))
        self._replies: ReplyQueue | None = None
        self.mode_setting = os.environ.get("MLESS_MODE")
        self.presence = LabPresence(os.environ.get("MLESS_PAYLOAD_BUCKET"))
        if (self.mode_setting or "auto").lower() in ("auto", "mirror"):
            self.presence.client()  # during init, off the first invocation's clock
        self._original: Handler | None = None

    def replies(self, function_name: str, function_arn: str = "") -> ReplyQueue:
        if self._replies is None:
            self._replies = ReplyQueue.create(
                self.sqs,
                self.reply_queue_prefix,
                function_name,
                function_arn=function_arn,
                payloads=self.payloads,
            )
        return self._replies

    def forward(
        self,
        event: Any,
        context: Any,
        in_place: Handler | None = None,
        *,
        library: bool = False,
        mode: Mode | None = None,
    ) -> Any:
        """Take one invocation the route its mode and the lab's presence choose.

        `in_place` runs the handler here (mirror, library mode); by default,
        the one MLESS_ORIGINAL_HANDLER names. `library` runs it in place where
        the proxy alone would queue or refuse.
        """
        mode = mode or self.mode()
        source = event_source(event)
        sighting = self.presence.sighting
        route = choose_route(mode, sighting, source, event, library=library)
        if route is Route.WAIT:
            try:
                return self.wait_for_lab(event, context, watch=mode is not Mode.SYNC)
            except _LabGoneError as gone:
                if library and in_place is not None:
                    return in_place(event, context)
                message = offline_message(gone.sighting, context.aws_request_id, True)
                raise _error_class("Mless.LabOffline")(message) from None
        if route is Route.QUEUE:
            self.send_for_later(event, context, "async")
            return _queued_answer(source, context.aws_request_id, event)
        if route is Route.REFUSE:
            message = offline_message(sighting(), context.aws_request_id)
            return _refusal(source, message, event)
        run = in_place or self.original_handler()
        if route is Route.MIRROR:
            self.send_copy(event, context)
        return run(event, context)

    def mode(self) -> Mode:
        try:
            return Mode.named(self.mode_setting)
        except ValueError as exc:
            raise _error_class("Mless.BadMode")(str(exc)) from None

    def original_handler(self) -> Handler:
        """The function's own handler, for running it in place (mirror mode)."""
        if self._original is None:
            name = os.environ.get("MLESS_ORIGINAL_HANDLER", "")
            if not name:
                raise _error_class("Mless.MirrorUnavailable")(
                    "Mirror mode runs the function's own handler here, but "
                    "MLESS_ORIGINAL_HANDLER does not name it: attach a Python "
                    "function with `mless attach`, or wrap its handler with "
                    "lambda_proxy.library."
                )
            self._original = load_handler(name)
        return self._original

    def send_for_later(self, event: Any, context: Any, mode: str) -> wire.Request:
        """Queue the invocation for the lab with no caller waiting for its reply."""
        deadline_ms = _now_ms() + context.get_remaining_time_in_millis()
        request = build_request(event, context, deadline_ms, None, mode)
        self.sqs.send_message(
            QueueUrl=self.request_queue_url,
            MessageBody=self.payloads.body_for(request),
        )
        logger.info("Queued request %s for the lab (%s)", request["request_id"], mode)
        return request

    def send_copy(self, event: Any, context: Any) -> None:
        # The copy is for the developer's eyes: failing to send it must not
        # fail the invocation the handler serves here.
        try:
            self.send_for_later(event, context, "mirror")
        except Exception as exc:
            logger.warning(
                "Could not send the lab a copy of request %s: %s",
                context.aws_request_id,
                exc,
            )

    def wait_for_lab(self, event: Any, context: Any, *, watch: bool = False) -> Any:
        """Send the request, wait for the lab's reply, answer as the handler did.

        `watch`: stop waiting, with _LabGoneError, once the lab's heartbeat
        says it went away before it took the request (`Sighting.gone`).
        """
        deadline_ms = _now_ms() + context.get_remaining_time_in_millis()
        replies = self.replies(context.function_name, context.invoked_function_arn)
        request = build_request(event, context, deadline_ms, replies.url, "sync")
        # A request over SQS's limit travels through the payload bucket.
        self.sqs.send_message(
            QueueUrl=self.request_queue_url,
            MessageBody=self.payloads.body_for(request),
        )
        try:
            reply = self._wait(replies, request["correlation_id"], deadline_ms, watch)
        except LabTimeoutError:
            raise _error_class("Mless.LabTimeout")(
                f"The lab did not answer request {context.aws_request_id} within "
                f"{(deadline_ms - request['sent_at_ms']) / 1000:.2f} s: is "
                "`mless run` serving this function's request queue?"
            ) from None
        if reply is None:
            _wait_for_lambda_timeout()
        self.presence.answered()
        return answer(reply)

    def _wait(
        self, replies: ReplyQueue, correlation_id: str, deadline_ms: int, watch: bool
    ) -> wire.Reply | None:
        give_up_at_ms = deadline_ms - LAB_ANSWER_MARGIN_MS
        if not watch:
            return replies.wait(correlation_id, give_up_at_ms, deadline_ms)
        # Wait in slices and look at the heartbeat between them, so a caller
        # learns within seconds that the lab went away, not at the timeout.
        # Once the lab acks, the slice lasts until the reply or the deadline.
        while True:
            slice_ends_at_ms = min(give_up_at_ms, _now_ms() + PRESENCE_CHECK_MS)
            try:
                return replies.wait(correlation_id, slice_ends_at_ms, deadline_ms)
            except LabTimeoutError:
                if slice_ends_at_ms >= give_up_at_ms:
                    raise
            sighting = self.presence.sighting()
            if sighting.gone():
                raise _LabGoneError(sighting)


class _LabGoneError(Exception):
    """The lab went away while the proxy waited for it to take a request."""

    def __init__(self, sighting: Sighting) -> None:
        super().__init__(sighting.detail)
        self.sighting = sighting


# Created during init, which Lambda runs with its own time budget before the
# first invocation's timeout starts; the first invocation then only creates
# this environment's reply queue.
_proxy = _Proxy() if "MLESS_REQUEST_QUEUE_URL" in os.environ else None


def handler(event: Any, context: Any) -> Any:
    """Lambda entry point: run this invocation's handler in the lab."""
    return environment_proxy().forward(event, context)


def environment_proxy() -> _Proxy:
    """This execution environment's proxy, made on first use."""
    global _proxy
    if _proxy is None:
        _proxy = _Proxy()
    return _proxy


def load_handler(name: str) -> Handler:
    """Import a handler named as Lambda names one: `module.function`, `dir/module.f`."""
    module_name, _, function_name = name.rpartition(".")
    if not module_name or not function_name:
        raise _error_class("Mless.MirrorUnavailable")(
            f"MLESS_ORIGINAL_HANDLER {name[:100]!r} is not of the form module.function."
        )
    module = importlib.import_module(module_name.replace("/", "."))
    return getattr(module, function_name)  # type: ignore[no-any-return]


def _queued_answer(source: EventSource, request_id: str, event: Any) -> Any:
    """What a caller gets for an invocation queued for the lab.

    Nothing (null) to a direct caller, as Lambda answers an Event invocation
    with no payload; an HTTP client gets 202 Accepted rather than the 502 an
    empty response would make API Gateway send.
    """
    if source not in HTTP_SOURCES:
        return None
    message = f"Request {request_id} is queued for the lab; it runs when the lab does."
    return http_response(source, 202, message, event)


def _refusal(source: EventSource, message: str, event: Any) -> Any:
    """Answer at once that the lab is offline: HTTP 503, or Mless.LabOffline."""
    logger.warning("%s", message)
    if source in HTTP_SOURCES:
        return http_response(source, 503, message, event)
    raise _error_class("Mless.LabOffline")(message)


def build_request(
    event: Any, context: Any, deadline_ms: int, reply_to: str | None, mode: str
) -> wire.Request:
    """Describe one invocation completely enough for the lab to run it."""
    environ = os.environ
    return {
        "v": wire.FORMAT_VERSION,
        "kind": "request",
        "correlation_id": wire.new_correlation_id(),
        "request_id": context.aws_request_id,
        "function": {
            "name": context.function_name,
            "version": context.function_version,
            "invoked_arn": context.invoked_function_arn,
            "memory_mb": int(context.memory_limit_in_mb),
            "timeout_ms": _timeout_ms(context),
            "region": environ.get("AWS_REGION", ""),
            "log_group": context.log_group_name,
            "log_stream": context.log_stream_name,
        },
        "deadline_ms": deadline_ms,
        "sent_at_ms": _now_ms(),
        "event": event,
        "client_context": _client_context(context),
        "identity": _identity(context),
        "trace_id": environ.get("_X_AMZN_TRACE_ID"),
        "tenant_id": getattr(context, "tenant_id", None),
        "environment": function_variables(environ),
        "credentials": {
            "access_key_id": environ.get("AWS_ACCESS_KEY_ID", ""),
            "secret_access_key": environ.get("AWS_SECRET_ACCESS_KEY", ""),
            "session_token": environ.get("AWS_SESSION_TOKEN"),
        },
        "mode": mode,
        "reply_to": reply_to,
    }


def function_variables(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The function's own environment variables: neither Lambda's nor mless's."""
    return {
        name: value for name, value in environ.items() if _is_functions_own(name, value)
    }


# Lambda's time zone for functions that set none.
LAMBDA_TZ = ":UTC"


def _is_functions_own(name: str, value: str) -> bool:
    # Lambda sets TZ to UTC unless the function configures its own zone; a
    # zone of the function's own is part of its configuration.
    if name == "TZ":
        return value != LAMBDA_TZ
    return name not in _RUNTIME_VARIABLES and not name.startswith(_OWN_VARIABLE_PREFIX)


def answer(reply: wire.Reply) -> Any:
    """Return the reply's payload exactly, or raise the handler's error."""
    if "payload" in reply:
        # Lambda's Python runtime passes bytes through unchanged, so the
        # caller receives the lab's serialization byte for byte.
        return reply["payload"].encode("utf-8")
    if "payload_base64" in reply:
        return base64.b64decode(reply["payload_base64"])
    error = reply["error"]
    error_type = error.get("errorType", "Exception")
    if error_type == "Sandbox.Timedout":
        _wait_for_lambda_timeout()
    if error_type == "Runtime.ExitError":
        _exit_as_the_handler_did(error.get("errorMessage", ""))
    raise _handler_error(error)


# Lambda's Python runtime reports its FaultException with the type, message
# and stack trace the exception carries, not with the frames it was raised
# through. Raised here, it hands the caller the handler's own stack trace,
# which no frame of the proxy can imitate.
_RUNTIME_FAULT_MODULE = "awslambdaric.lambda_runtime_exception"


def _handler_error(error: wire.LambdaError) -> Exception:
    """The exception that makes Lambda report the handler's error as its own."""
    error_type = error.get("errorType", "Exception")
    message = error.get("errorMessage", "")
    # A Node.js handler's error carries its stack under "trace".
    trace = error.get("stackTrace", error.get("trace", []))
    fault = getattr(sys.modules.get(_RUNTIME_FAULT_MODULE), "FaultException", None)
    if fault is None:
        return _error_class(error_type)(message)
    return fault(error_type, message, list(trace))  # type: ignore[no-any-return]


def _error_class(error_type: str) -> type[Exception]:
    # Lambda names an unhandled error after its class, so a class with the
    # handler's error type as its name makes Lambda report the same type.
    return type(error_type, (Exception,), {"__module__": "builtins"})


# How Lambda's platform, written in Go, names the signal that ended a runtime.
_SIGNALS_BY_NAME = {
    "hangup": signal.SIGHUP,
    "interrupt": signal.SIGINT,
    "quit": signal.SIGQUIT,
    "illegal instruction": signal.SIGILL,
    "aborted": signal.SIGABRT,
    "bus error": signal.SIGBUS,
    "floating point exception": signal.SIGFPE,
    "killed": signal.SIGKILL,
    "user defined signal 1": signal.SIGUSR1,
    "segmentation fault": signal.SIGSEGV,
    "user defined signal 2": signal.SIGUSR2,
    "broken pipe": signal.SIGPIPE,
    "alarm clock": signal.SIGALRM,
    "terminated": signal.SIGTERM,
}
_EXIT_REASON = re.compile(
    r"Runtime exited with error: "
    r"(?:exit status (?P<status>\d+)|signal: (?P<signal>.+))$"
)


def _exit_as_the_handler_did(message: str) -> NoReturn:
    """End this runtime as the handler's ended, so Lambda reports Runtime.ExitError.

    Lambda then describes the exit in its own words and under this
    invocation's request id, which is the handler's.
    """
    reason = _EXIT_REASON.search(message)
    sys.stdout.flush()
    sys.stderr.flush()
    if reason and reason["signal"]:
        _kill_self(_SIGNALS_BY_NAME.get(reason["signal"], signal.SIGKILL))
    os._exit(int(reason["status"]) if reason and reason["status"] else 0)


def _kill_self(number: int) -> NoReturn:
    if number != signal.SIGKILL:
        try:
            signal.signal(number, signal.SIG_DFL)
        except ValueError:
            pass  # not the main thread: its handler stays, SIGKILL follows
    os.kill(os.getpid(), number)
    # Only a signal that was caught or blocked gets here.
    os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(1)


def _wait_for_lambda_timeout() -> NoReturn:
    """Sleep until Lambda stops this invocation with its own timeout error."""
    while True:
        time.sleep(1)


def _timeout_ms(context: Any) -> int:
    # Lambda does not tell a function its timeout, but timeouts are whole
    # seconds and an invocation starts with all of it but a few milliseconds.
    remaining_ms = int(context.get_remaining_time_in_millis())
    return max(1000, -(-remaining_ms // 1000) * 1000)


# The mobile client's fields; the runtime's Client object has slots, no dict.
_CLIENT_FIELDS = (
    "installation_id",
    "app_title",
    "app_version_name",
    "app_version_code",
    "app_package_name",
)


def _client_context(context: Any) -> Any:
    client_context = getattr(context, "client_context", None)
    if client_context is None:
        return None
    client = getattr(client_context, "client", None)
    sent = {
        "custom": getattr(client_context, "custom", None),
        "env": getattr(client_context, "env", None),
        "client": None
        if client is None
        else {name: getattr(client, name, None) for name in _CLIENT_FIELDS},
    }
    # The runtime takes the W3C trace context out of the client context it
    # received; put it back so the lab's context offers the same w3c().
    w3c = getattr(context, "w3c", None)
    trace_context = w3c() if callable(w3c) else None
    if trace_context:
        sent["w3c"] = trace_context
    return sent


def _identity(context: Any) -> Any:
    identity = getattr(context, "identity", None)
    identity_id = getattr(identity, "cognito_identity_id", None)
    pool_id = getattr(identity, "cognito_identity_pool_id", None)
    if identity_id is None and pool_id is None:
        return None
    return {"cognitoIdentityId": identity_id, "cognitoIdentityPoolId": pool_id}


def _now_ms() -> int:
    return int(time.time() * 1000)
