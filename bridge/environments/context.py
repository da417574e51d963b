"""The context object a Python handler receives, with Lambda's attributes and types.

The Python execution environment loads this file by path under a private module
name, so it must stay importable on its own: standard library only, Python 3.9
and later.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

# The W3C trace-context fields a client may send under "w3c" in its context.
W3C_FIELDS = ("traceparent", "tracestate", "baggage")


def _describe(obj: object, names: tuple[str, ...]) -> str:
    """Render `obj` as `Kind([name=value,...])`, the runtime's repr style."""
    fields = ",".join(f"{name}={getattr(obj, name)}" for name in names)
    return f"{type(obj).__name__}([{fields}])"


class CognitoIdentity:
    """The Amazon Cognito identity that invoked the function, if any."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity: dict[str, Any]) -> None:
        self.cognito_identity_id = identity.get("cognitoIdentityId")
        self.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return _describe(self, self.__slots__)


class Client:
    """The mobile app that invoked the function through the AWS Mobile SDK."""

    __slots__ = (
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    )

    def __init__(self, client: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, client.get(name))

    def __repr__(self) -> str:
        return _describe(self, self.__slots__)


class ClientContext:
    """What the invoking client sent: `custom` and `env` maps and its `client`."""

    __slots__ = ("custom", "env", "client")

    def __init__(self, client_context: dict[str, Any]) -> None:
        client = client_context.get("client")
        self.custom = client_context.get("custom")
        self.env = client_context.get("env")
        self.client = Client(client) if client is not None else None

    def __repr__(self) -> str:
        return _describe(self, self.__slots__)


class LambdaContext:
    """What a handler learns about its invocation, its function and its deadline.

    The function's attributes are read from the environment Lambda sets, so
    `memory_limit_in_mb` is a string ("128"), as in Lambda. `identity` is always
    an object; `client_context` is None unless the caller sent one.
    """

    _REPR_FIELDS = (
        "aws_request_id",
        "log_group_name",
        "log_stream_name",
        "function_name",
        "memory_limit_in_mb",
        "function_version",
        "invoked_function_arn",
        "client_context",
        "identity",
        "tenant_id",
    )

    def __init__(
        self,
        aws_request_id: str,
        invoked_function_arn: str,
        deadline_ms: int,
        timeout_ms: int,
        client_context: dict[str, Any] | None = None,
        identity: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = aws_request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.client_context = (
            ClientContext(client_context) if client_context is not None else None
        )
        self.identity = CognitoIdentity(identity or {})
        self.tenant_id = tenant_id
        self._trace_context = _w3c_fields(client_context)
        self._deadline_ms = deadline_ms
        self._timeout_ms = timeout_ms

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before the invocation's deadline."""
        remaining_ms = self._deadline_ms - int(time.time() * 1000)
        # The deadline comes from the lab's clock, which may disagree with
        # Lambda's; the function's timeout bounds what a handler is promised.
        return max(0, min(remaining_ms, self._timeout_ms))

    def w3c(self) -> dict[str, str]:
        """Return the W3C trace context the caller sent, if any, as a new dict."""
        return dict(self._trace_context)

    def log(self, message: object) -> None:
        """Write `message` to the function's log as is, with no newline added."""
        sys.stdout.write(str(message))

    def __repr__(self) -> str:
        return _describe(self, self._REPR_FIELDS)


def _w3c_fields(client_context: dict[str, Any] | None) -> dict[str, str]:
    sent = (client_context or {}).get("w3c")
    if not isinstance(sent, dict):
        return {}
    return {name: sent[name] for name in W3C_FIELDS if isinstance(sent.get(name), str)}
