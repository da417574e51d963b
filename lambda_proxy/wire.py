"""The envelope: the JSON messages that carry one invocation over SQS.

Both sides import this module: the proxy in Lambda builds requests and reads
replies, the lab reads requests and builds replies. It uses the standard
library only, because it is deployed with the proxy.

Three kinds of message travel, each a JSON object with a format version:

- a *request* (proxy -> request queue -> lab): everything the lab needs to run
  the invocation as Lambda would;
- an *ack* (lab -> reply queue): the lab has started the handler, so the proxy
  knows the lab is there and lets the handler run to the deadline;
- a *reply* (lab -> reply queue): the payload to return, or the error to raise.

SQS accepts only some Unicode characters in a body (no lone surrogates, no
U+FFFE/U+FFFF, no control characters but tab and newlines). JSON already
escapes control characters; `encode` escapes the rest, so any event travels
unchanged.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal, TypedDict

FORMAT_VERSION = 1

# SQS's maximum message size. The body is counted in UTF-8 bytes; mless sends
# no message attributes, which would count too.
SQS_MAX_MESSAGE_BYTES = 1_048_576

_SQS_UNSAFE = re.compile("[\ud800-\udfff\ufffe\uffff]")


class EnvelopeError(ValueError):
    """A message is not a valid envelope; it must never be executed."""


class EnvelopeTooLargeError(ValueError):
    """An envelope does not fit in one SQS message."""

    def __init__(self, kind: str, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"The {kind} is {size_bytes} bytes once encoded; an SQS message "
            f"carries at most {limit_bytes} bytes."
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class FunctionIdentity(TypedDict):
    """Who is being invoked, as the deployed function's configuration says."""

    name: str
    version: str
    invoked_arn: str
    memory_mb: int
    timeout_ms: int
    region: str
    log_group: str
    log_stream: str


class Credentials(TypedDict):
    """The function role's temporary credentials, handed to the handler."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None


class LambdaError(TypedDict, total=False):
    """An error payload as Lambda returns it (Python and Node.js shapes)."""

    errorMessage: str
    errorType: str
    requestId: str
    stackTrace: list[str]
    trace: list[str]


class Request(TypedDict):
    """One delivery of one invocation, from the proxy to the lab."""

    v: int
    kind: Literal["request"]
    correlation_id: str
    request_id: str
    function: FunctionIdentity
    deadline_ms: int
    sent_at_ms: int
    event: Any
    client_context: Any
    identity: Any
    trace_id: str | None
    tenant_id: str | None
    environment: dict[str, str]
    credentials: Credentials
    mode: str
    reply_to: str | None


class Ack(TypedDict):
    """The lab started the handler for this request."""

    v: int
    kind: Literal["ack"]
    correlation_id: str
    request_id: str


class Reply(TypedDict, total=False):
    """The outcome of one request: a payload or an error, never both."""

    v: int
    kind: Literal["reply"]
    correlation_id: str
    request_id: str
    payload: str
    payload_base64: str
    error: LambdaError
    duration_ms: float


Envelope = Request | Ack | Reply

_REQUIRED: dict[str, tuple[str, ...]] = {
    "request": (
        "correlation_id",
        "request_id",
        "function",
        "deadline_ms",
        "sent_at_ms",
        "event",
        "environment",
        "credentials",
        "mode",
        "reply_to",
    ),
    "ack": ("correlation_id", "request_id"),
    "reply": ("correlation_id", "request_id"),
}
_REQUIRED_FUNCTION_FIELDS = tuple(FunctionIdentity.__annotations__)


def new_correlation_id() -> str:
    """Return an id unique to one delivery attempt of one invocation."""
    return uuid.uuid4().hex


def encode(envelope: Envelope, limit_bytes: int = SQS_MAX_MESSAGE_BYTES) -> str:
    """Serialize an envelope to an SQS-safe body, checking its size in bytes."""
    text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    text = _SQS_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    size = len(text.encode("utf-8"))
    if size > limit_bytes:
        raise EnvelopeTooLargeError(envelope.get("kind", "message"), size, limit_bytes)
    return text


def decode(body: str) -> Envelope:
    """Parse and validate a message body; raise EnvelopeError if it is not one."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise EnvelopeError(f"the body is not JSON ({exc})") from exc
    if not isinstance(message, dict):
        raise EnvelopeError("the body is JSON but not an object")
    version = message.get("v")
    if version != FORMAT_VERSION:
        raise EnvelopeError(
            f"format version {version!r} is not the supported {FORMAT_VERSION}"
        )
    kind = message.get("kind")
    if kind not in _REQUIRED:
        raise EnvelopeError(f"unknown message kind {kind!r}")
    missing = [name for name in _REQUIRED[kind] if name not in message]
    if missing:
        raise EnvelopeError(f"the {kind} lacks {', '.join(missing)}")
    if kind == "request":
        _check_request(message)
    if (
        kind == "reply"
        and ("payload" in message)
        + ("payload_base64" in message)
        + ("error" in message)
        != 1
    ):
        raise EnvelopeError("a reply holds exactly one of payload or error")
    return message  # type: ignore[return-value]


def _check_request(message: dict[str, Any]) -> None:
    function = message["function"]
    if not isinstance(function, dict):
        raise EnvelopeError("the request's function is not an object")
    missing = [name for name in _REQUIRED_FUNCTION_FIELDS if name not in function]
    if missing:
        raise EnvelopeError(f"the request's function lacks {', '.join(missing)}")
    if not isinstance(message["deadline_ms"], int):
        raise EnvelopeError("the request's deadline_ms is not an integer")
    environment = message["environment"]
    if not isinstance(environment, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    ):
        raise EnvelopeError("the request's environment is not a map of strings")


def ack_for(request: Request) -> Ack:
    """Build the ack the lab sends when it starts running a request."""
    return {
        "v": FORMAT_VERSION,
        "kind": "ack",
        "correlation_id": request["correlation_id"],
        "request_id": request["request_id"],
    }


def reply_for(request: Request, **outcome: Any) -> Reply:
    """Build the reply to a request from one outcome field (payload or error)."""
    reply: Reply = {
        "v": FORMAT_VERSION,
        "kind": "reply",
        "correlation_id": request["correlation_id"],
        "request_id": request["request_id"],
    }
    reply.update(outcome)  # type: ignore[typeddict-item]
    return reply
