"""The proxy function: forward one invocation to the lab, answer as its handler did.

Stages of one invocation:

1. build the request envelope from the event, the context and this
   function's environment (its own variables and its role's credentials);
2. send it to the request queue;
3. wait on this environment's reply queue for the reply with the same
   correlation id (see `replies` for why that reaches only this caller);
4. return the handler's payload byte for byte, or raise an error whose type
   name and message are the handler's, so Lambda reports the same errorType.

Time runs out in two ways that the caller can tell apart. If the lab never
answers, the proxy raises `Mless.LabTimeout` shortly before its deadline. If
the lab acked and the handler is still running at the deadline, the proxy
does nothing more, so Lambda ends it with its own `Sandbox.Timedout` error,
exactly as if the handler had run in Lambda.

Configuration comes from environment variables set by the stack:
MLESS_REQUEST_QUEUE_URL and MLESS_REPLY_QUEUE_PREFIX.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any, NoReturn

import boto3

from lambda_proxy import wire
from lambda_proxy.replies import LabTimeoutError, ReplyQueue

# The proxy gives up on a silent lab this long before its deadline, leaving
# time to raise its own error before Lambda's timeout would hide it.
LAB_ANSWER_MARGIN_MS = 500

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
        self._replies: ReplyQueue | None = None

    def replies(self, function_name: str) -> ReplyQueue:
        if self._replies is None:
            self._replies = ReplyQueue.create(
                self.sqs, self.reply_queue_prefix, function_name
            )
        return self._replies

    def forward(self, event: Any, context: Any) -> Any:
        deadline_ms = _now_ms() + context.get_remaining_time_in_millis()
        replies = self.replies(context.function_name)
        request = build_request(event, context, deadline_ms, replies.url, "sync")
        self.sqs.send_message(
            QueueUrl=self.request_queue_url, MessageBody=wire.encode(request)
        )
        try:
            reply = replies.wait(
                request["correlation_id"],
                give_up_at_ms=deadline_ms - LAB_ANSWER_MARGIN_MS,
                deadline_ms=deadline_ms,
            )
        except LabTimeoutError:
            raise _error_class("Mless.LabTimeout")(
                f"The lab did not answer request {context.aws_request_id} within "
                f"{(deadline_ms - request['sent_at_ms']) / 1000:.2f} s: is "
                "`mless run` serving this function's request queue?"
            ) from None
        if reply is None:
            _wait_for_lambda_timeout()
        return answer(reply)


# Created during init, which Lambda runs with its own time budget before the
# first invocation's timeout starts; the first invocation then only creates
# this environment's reply queue.
_proxy = _Proxy() if "MLESS_REQUEST_QUEUE_URL" in os.environ else None


def handler(event: Any, context: Any) -> Any:
    """Lambda entry point: run this invocation's handler in the lab."""
    global _proxy
    if _proxy is None:
        _proxy = _Proxy()
    return _proxy.forward(event, context)


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
        name: value
        for name, value in environ.items()
        if name not in _RUNTIME_VARIABLES and not name.startswith(_OWN_VARIABLE_PREFIX)
    }


def answer(reply: wire.Reply) -> Any:
    """Return the reply's payload exactly, or raise the handler's error."""
    if "payload" in reply:
        # Lambda's Python runtime passes bytes through unchanged, so the
        # caller receives the lab's serialization byte for byte.
        return reply["payload"].encode("utf-8")
    if "payload_base64" in reply:
        return base64.b64decode(reply["payload_base64"])
    error = reply["error"]
    if error.get("errorType") == "Sandbox.Timedout":
        _wait_for_lambda_timeout()
    raise _error_class(error.get("errorType", "Exception"))(
        error.get("errorMessage", "")
    )


def _error_class(error_type: str) -> type[Exception]:
    # Lambda names an unhandled error after its class, so a class with the
    # handler's error type as its name makes Lambda report the same type.
    return type(error_type, (Exception,), {"__module__": "builtins"})


def _wait_for_lambda_timeout() -> NoReturn:
    """Sleep until Lambda stops this invocation with its own timeout error."""
    while True:
        time.sleep(1)


def _timeout_ms(context: Any) -> int:
    # Lambda does not tell a function its timeout, but timeouts are whole
    # seconds and an invocation starts with all of it but a few milliseconds.
    remaining_ms = int(context.get_remaining_time_in_millis())
    return max(1000, -(-remaining_ms // 1000) * 1000)


def _client_context(context: Any) -> Any:
    client_context = getattr(context, "client_context", None)
    if client_context is None:
        return None
    client = getattr(client_context, "client", None)
    return {
        "custom": getattr(client_context, "custom", None),
        "env": getattr(client_context, "env", None),
        "client": None if client is None else dict(vars(client)),
    }


def _identity(context: Any) -> Any:
    identity = getattr(context, "identity", None)
    identity_id = getattr(identity, "cognito_identity_id", None)
    pool_id = getattr(identity, "cognito_identity_pool_id", None)
    if identity_id is None and pool_id is None:
        return None
    return {"cognitoIdentityId": identity_id, "cognitoIdentityPoolId": pool_id}


def _now_ms() -> int:
    return int(time.time() * 1000)
