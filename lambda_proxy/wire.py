"""The envelope: the JSON messages that carry one invocation over SQS.

Both sides import this module: the proxy in Lambda builds requests and reads
replies, the lab reads requests and builds replies. It uses the standard
library only, because it is deployed with the proxy.

Four kinds of message travel, each a JSON object with a format version:

- a *request* (proxy -> request queue -> lab): everything the lab needs to run
  the invocation as Lambda would;
- an *ack* (lab -> reply queue): the lab has started the handler, so the proxy
  knows the lab is there and lets the handler run to the deadline;
- a *reply* (lab -> reply queue): the payload to return, or the error to raise;
- a *stored* envelope, which stands in for a request or reply too large for
  one SQS message: the whole envelope waits in the stack's payload bucket
  (see `payloads`) and this names where. There it is kept as a JSON header
  line followed by its bulk (the event, or the payload) as raw bytes, so
  that a 5 MB payload is not escaped into a JSON string and back.

`decode` checks every field the receiver relies on, so a message it accepts
can be acted on without further checks; one it refuses must never be run.

SQS accepts only some Unicode characters in a body (no lone surrogates, no
U+FFFE/U+FFFF, no control characters but tab and newlines). JSON already
escapes control characters; `encode` escapes the rest, so any event travels
unchanged.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal, NamedTuple, TypedDict

FORMAT_VERSION = 1

# SQS's maximum message size. The body is counted in UTF-8 bytes; mless sends
# no message attributes with requests and replies, which would count too.
SQS_MAX_MESSAGE_BYTES = 1_048_576

# Lambda's limits on a synchronous invocation: the event as Invoke accepts it
# (6 MiB), and the response, which Lambda checks against 6 MiB and 100 bytes.
LAMBDA_EVENT_MAX_BYTES = 6 * 1024 * 1024
LAMBDA_RESPONSE_MAX_BYTES = 6 * 1024 * 1024 + 100

_SQS_UNSAFE = re.compile("[\ud800-\udfff\ufffe\uffff]")
# How much of a bad field's value an error message shows.
_SHOWN_CHARACTERS = 40


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


class Stored(TypedDict):
    """A request or reply kept in the payload bucket; the message names it."""

    v: int
    kind: Literal["stored"]
    body_of: Literal["request", "reply"]
    correlation_id: str
    request_id: str
    bucket: str
    key: str
    size_bytes: int


Envelope = Request | Ack | Reply | Stored

_NONE = type(None)
_REQUIRED: dict[str, dict[str, tuple[type, ...]]] = {
    "request": {
        "correlation_id": (str,),
        "request_id": (str,),
        "function": (dict,),
        "deadline_ms": (int,),
        "sent_at_ms": (int,),
        "event": (object,),
        "environment": (dict,),
        "credentials": (dict,),
        "mode": (str,),
        "reply_to": (str, _NONE),
    },
    "ack": {"correlation_id": (str,), "request_id": (str,)},
    "reply": {"correlation_id": (str,), "request_id": (str,)},
    "stored": {
        "body_of": (str,),
        "correlation_id": (str,),
        "request_id": (str,),
        "bucket": (str,),
        "key": (str,),
        "size_bytes": (int,),
    },
}
_OPTIONAL_REQUEST_FIELDS: dict[str, tuple[type, ...]] = {
    "trace_id": (str, _NONE),
    "tenant_id": (str, _NONE),
}
_FUNCTION_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "version": (str,),
    "invoked_arn": (str,),
    "memory_mb": (int,),
    "timeout_ms": (int,),
    "region": (str,),
    "log_group": (str,),
    "log_stream": (str,),
}
_CREDENTIAL_FIELDS: dict[str, tuple[type, ...]] = {
    "access_key_id": (str,),
    "secret_access_key": (str,),
    "session_token": (str, _NONE),
}
# The fields that a stored envelope keeps as raw bytes after its header.
_BULK_FIELDS: dict[Any, tuple[str, ...]] = {
    "request": ("event",),
    "reply": ("payload", "payload_base64"),
}
_REPLY_OUTCOMES: dict[str, tuple[type, ...]] = {
    "payload": (str,),
    "payload_base64": (str,),
    "error": (dict,),
}


def new_correlation_id() -> str:
    """Return an id unique to one delivery attempt of one invocation."""
    return uuid.uuid4().hex


def encode(envelope: Envelope, limit_bytes: int | None = SQS_MAX_MESSAGE_BYTES) -> str:
    """Serialize an envelope to an SQS-safe body, checking its size in bytes.

    `limit_bytes=None` skips the check, for a body that goes to S3 instead.
    """
    text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        # Only non-ASCII text can hold what SQS refuses. The check is free
        # for ASCII, and the scan costs 6 ns a character (30 ms for 5 MB).
        text = _SQS_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if limit_bytes is not None:
        size = size_in_bytes(text)
        if size > limit_bytes:
            kind = str(envelope.get("kind", "message"))
            raise EnvelopeTooLargeError(kind, size, limit_bytes)
    return text


def size_in_bytes(body: str) -> int:
    """The size SQS counts for a body `encode` wrote: its UTF-8 bytes."""
    return len(body) if body.isascii() else len(body.encode("utf-8"))


class Bulk(NamedTuple):
    """The field that makes an envelope large, and its value as text."""

    field: str | None  # None for an ack, a stored envelope or an error reply
    text: str  # the event as JSON text; a payload as it is


def bulk_of(envelope: Request | Reply) -> Bulk:
    """An envelope's bulk: the event of a request, the payload of a reply."""
    for field in _BULK_FIELDS[envelope["kind"]]:
        if field in envelope:
            value = envelope[field]  # type: ignore[literal-required]
            if field == "event":
                value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            return Bulk(field, value)
    return Bulk(None, "")


def encode_for_storage(envelope: Request | Reply, bulk: Bulk | None = None) -> bytes:
    """The bytes the payload bucket keeps for an envelope: header, then bulk.

    The header is the envelope's JSON without its bulk field, naming that
    field in `bulk`; the field's value follows the newline as UTF-8 text.
    Lone surrogates pass as they are (surrogatepass). `bulk`, when given,
    is `bulk_of(envelope)`, so that a 5 MB event is written out only once.
    """
    field, text = bulk or bulk_of(envelope)
    if field is None:
        return encode(envelope, limit_bytes=None).encode("utf-8")
    header = {name: value for name, value in envelope.items() if name != field}
    header["bulk"] = field
    head = json.dumps(header, separators=(",", ":")).encode("ascii")
    return head + b"\n" + text.encode("utf-8", "surrogatepass")


def read_from_storage(data: bytes) -> tuple[Envelope, Bulk]:
    """Read what `encode_for_storage` wrote: the envelope, and its bulk as stored.

    Raises EnvelopeError if it is not an envelope. The lab hands a stored
    event's text to the execution environment as it is, instead of writing
    the parsed event out again (16 ms for 5 MB). An envelope stored whole
    has no bulk: Bulk(None, "").
    """
    head, newline, bulk = data.partition(b"\n")
    if not newline:
        # Written whole, as a body of an SQS message is.
        return decode(data.decode("utf-8", "surrogatepass")), Bulk(None, "")
    message = _parse(head.decode("utf-8", "replace"))
    field = message.pop("bulk", None)
    if field not in _BULK_FIELDS.get(message.get("kind"), ()) or field in message:
        raise EnvelopeError(f"a stored envelope's bulk is {_shown(field)}")
    text = bulk.decode("utf-8", "surrogatepass")
    if field == "event":
        try:
            message[field] = json.loads(text)
        except ValueError as exc:
            raise EnvelopeError(f"the stored event is not JSON ({exc})") from exc
    else:
        message[field] = text
    return _checked(message), Bulk(field, text)


def decode(body: str) -> Envelope:
    """Parse and validate a message body; raise EnvelopeError if it is not one."""
    return _checked(_parse(body))


def _parse(body: str) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise EnvelopeError(f"the body is not JSON ({exc})") from exc
    if not isinstance(message, dict):
        raise EnvelopeError("the body is JSON but not an object")
    return message


def _checked(message: dict[str, Any]) -> Envelope:
    version = message.get("v")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise EnvelopeError(
            f"format version {_shown(version)} is not the supported {FORMAT_VERSION}"
        )
    kind = message.get("kind")
    if not isinstance(kind, str) or kind not in _REQUIRED:
        raise EnvelopeError(f"unknown message kind {_shown(kind)}")
    _check_fields(message, _REQUIRED[kind], f"the {kind}", required=True)
    if kind == "request":
        _check_request(message)
    elif kind == "reply":
        _check_reply(message)
    elif kind == "stored":
        _check_stored(message)
    return message  # type: ignore[return-value]


def _check_fields(
    message: dict[str, Any],
    fields: dict[str, tuple[type, ...]],
    owner: str,
    *,
    required: bool,
) -> None:
    missing = [name for name in fields if name not in message]
    if missing and required:
        raise EnvelopeError(f"{owner} lacks {', '.join(missing)}")
    for name, types in fields.items():
        if name in message and not _is_a(message[name], types):
            raise EnvelopeError(
                f"{owner}'s {name} is {type(message[name]).__name__}, not "
                f"{' or '.join(t.__name__ for t in types)}"
            )


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    # JSON's true and false are ints to Python; no field of ours is a boolean.
    if isinstance(value, bool) and object not in types:
        return False
    return isinstance(value, types)


def _check_request(message: dict[str, Any]) -> None:
    _check_fields(message, _OPTIONAL_REQUEST_FIELDS, "the request", required=False)
    _check_fields(
        message["function"], _FUNCTION_FIELDS, "the request's function", required=True
    )
    _check_fields(
        message["credentials"],
        _CREDENTIAL_FIELDS,
        "the request's credentials",
        required=True,
    )
    environment = message["environment"]
    if not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    ):
        raise EnvelopeError("the request's environment is not a map of strings")


def _check_reply(message: dict[str, Any]) -> None:
    outcomes = [name for name in _REPLY_OUTCOMES if name in message]
    if len(outcomes) != 1:
        raise EnvelopeError("a reply holds exactly one of payload or error")
    _check_fields(message, _REPLY_OUTCOMES, "the reply", required=False)


def _check_stored(message: dict[str, Any]) -> None:
    if message["body_of"] not in ("request", "reply"):
        raise EnvelopeError(
            f"a stored envelope of unknown kind {_shown(message['body_of'])}"
        )
    if message["size_bytes"] < 0:
        raise EnvelopeError("a stored envelope of negative size")


def _shown(value: Any) -> str:
    """A value from a message, short enough for a log line."""
    text = repr(value)
    if len(text) > _SHOWN_CHARACTERS:
        return text[: _SHOWN_CHARACTERS - 3] + "..."
    return text


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


def stored_for(
    envelope: Request | Reply, bucket: str, key: str, size_bytes: int
) -> Stored:
    """Build the message that stands in for an envelope kept in S3."""
    return {
        "v": FORMAT_VERSION,
        "kind": "stored",
        "body_of": envelope["kind"],
        "correlation_id": envelope["correlation_id"],
        "request_id": envelope["request_id"],
        "bucket": bucket,
        "key": key,
        "size_bytes": size_bytes,
    }
