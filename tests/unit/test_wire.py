"""The envelope: what encodes, what decodes, and every way a message is refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lambda_proxy import wire


def a_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "v": wire.FORMAT_VERSION,
        "kind": "request",
        "correlation_id": "c0ffee",
        "request_id": "4d1f0b6e-0000-4000-8000-000000000001",
        "function": {
            "name": "orders",
            "version": "$LATEST",
            "invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
            "memory_mb": 128,
            "timeout_ms": 3000,
            "region": "us-east-1",
            "log_group": "/aws/lambda/orders",
            "log_stream": "2026/01/01/[$LATEST]abc",
        },
        "deadline_ms": 1_800_000_000_000,
        "sent_at_ms": 1_799_999_997_000,
        "event": {"Records": [{"n": 1}]},
        "client_context": None,
        "identity": None,
        "trace_id": "Root=1-abc",
        "tenant_id": None,
        "environment": {"TABLE": "orders"},
        "credentials": {
            "access_key_id": "ASIAEXAMPLE",
            "secret_access_key": "secret",
            "session_token": "token",
        },
        "mode": "sync",
        "reply_to": "https://sqs.us-east-1.amazonaws.com/123456789012/mless-reply-ab",
    }
    request.update(changes)
    return request


def body(message: Any) -> str:
    return json.dumps(message)


def test_a_request_survives_encode_and_decode():
    request = a_request()

    assert wire.decode(wire.encode(request)) == request


def test_characters_sqs_refuses_are_escaped_and_come_back_unchanged():
    event = {"text": "lone \ud800 surrogate, \ufffe and \uffff, emoji \U0001f600"}
    request = a_request(event=event)

    encoded = wire.encode(request)

    assert "\ud800" not in encoded and "\ufffe" not in encoded
    assert "\U0001f600" in encoded  # SQS takes it as it is
    assert wire.decode(encoded)["event"] == event


def test_the_size_limit_counts_bytes_not_characters():
    request = a_request(event="é" * 600_000)  # 600,000 characters, 1.2 MB

    with pytest.raises(wire.EnvelopeTooLargeError) as caught:
        wire.encode(request)

    assert caught.value.size_bytes > wire.SQS_MAX_MESSAGE_BYTES
    assert caught.value.limit_bytes == wire.SQS_MAX_MESSAGE_BYTES
    assert "bytes once encoded" in str(caught.value)


def test_no_limit_encodes_a_body_of_any_size():
    request = a_request(event="x" * 2_000_000)

    assert len(wire.encode(request, limit_bytes=None)) > 2_000_000


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('"a string"', "not an object"),
        (body(a_request(v=2)), "format version 2"),
        (body(a_request(v="1")), "format version '1'"),
        (body(a_request(v=True)), "format version True"),
        (body({k: v for k, v in a_request().items() if k != "v"}), "version None"),
        (body(a_request(kind="invoke")), "unknown message kind 'invoke'"),
        (body(a_request(kind=None)), "unknown message kind None"),
    ],
)
def test_what_is_not_an_envelope_is_refused(text, why):
    with pytest.raises(wire.EnvelopeError, match=why):
        wire.decode(text)


@pytest.mark.parametrize(
    "field",
    [
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
    ],
)
def test_a_request_without_a_required_field_is_refused(field):
    request = a_request()
    del request[field]

    with pytest.raises(wire.EnvelopeError, match=f"the request lacks {field}"):
        wire.decode(body(request))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"deadline_ms": "soon"}, "deadline_ms is str, not int"),
        ({"deadline_ms": True}, "deadline_ms is bool, not int"),
        ({"deadline_ms": 1.5}, "deadline_ms is float, not int"),
        ({"correlation_id": 7}, "correlation_id is int"),
        ({"reply_to": 42}, "reply_to is int, not str or NoneType"),
        ({"mode": None}, "mode is NoneType"),
        ({"function": "orders"}, "function is str, not dict"),
        ({"trace_id": ["x"]}, "trace_id is list"),
        ({"environment": {"A": 1}}, "environment is not a map of strings"),
        ({"environment": ["A=1"]}, "environment is list, not dict"),
    ],
)
def test_a_request_with_a_field_of_the_wrong_type_is_refused(changes, why):
    with pytest.raises(wire.EnvelopeError, match=why):
        wire.decode(body(a_request(**changes)))


@pytest.mark.parametrize("field", ["name", "invoked_arn", "timeout_ms", "log_stream"])
def test_a_request_whose_function_lacks_a_field_is_refused(field):
    request = a_request()
    del request["function"][field]

    with pytest.raises(wire.EnvelopeError, match=f"function lacks {field}"):
        wire.decode(body(request))


def test_a_request_whose_function_memory_is_text_is_refused():
    request = a_request()
    request["function"]["memory_mb"] = "128"

    with pytest.raises(wire.EnvelopeError, match="memory_mb is str"):
        wire.decode(body(request))


@pytest.mark.parametrize("field", ["access_key_id", "secret_access_key"])
def test_a_request_with_incomplete_credentials_is_refused(field):
    request = a_request()
    del request["credentials"][field]

    with pytest.raises(wire.EnvelopeError, match=f"credentials lacks {field}"):
        wire.decode(body(request))


def test_a_request_without_a_session_token_is_accepted():
    request = a_request()
    request["credentials"]["session_token"] = None

    assert wire.decode(body(request))["kind"] == "request"


def test_an_error_message_shows_only_the_start_of_a_bad_value():
    with pytest.raises(wire.EnvelopeError) as caught:
        wire.decode(body(a_request(v="x" * 10_000)))

    assert len(str(caught.value)) < 120


@pytest.mark.parametrize(
    "outcome",
    [
        {},
        {"payload": "1", "error": {"errorType": "E"}},
        {"payload": "1", "payload_base64": "MQ=="},
    ],
)
def test_a_reply_holds_exactly_one_outcome(outcome):
    reply = {"v": 1, "kind": "reply", "correlation_id": "c", "request_id": "r"}

    with pytest.raises(wire.EnvelopeError, match="exactly one"):
        wire.decode(body({**reply, **outcome}))


def test_a_reply_whose_payload_is_not_text_is_refused():
    reply = {"v": 1, "kind": "reply", "correlation_id": "c", "request_id": "r"}

    with pytest.raises(wire.EnvelopeError, match="payload is dict"):
        wire.decode(body({**reply, "payload": {"a": 1}}))


def test_ack_and_reply_carry_the_requests_correlation_id():
    request = a_request()

    ack = wire.ack_for(request)
    reply = wire.reply_for(request, payload='{"ok":true}')

    assert wire.decode(wire.encode(ack)) == ack
    assert wire.decode(wire.encode(reply)) == reply
    assert ack["correlation_id"] == reply["correlation_id"] == "c0ffee"


def test_a_stored_stand_in_names_the_envelope_it_replaces():
    request = a_request()

    stored = wire.stored_for(request, "payloads", "c0ffee/request", 1234)

    assert wire.decode(wire.encode(stored)) == stored
    assert stored["body_of"] == "request"
    assert stored["correlation_id"] == "c0ffee"
    assert len(wire.encode(stored)) < 400


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"body_of": "ack"}, "unknown kind 'ack'"),
        ({"size_bytes": -1}, "negative size"),
        ({"size_bytes": "12"}, "size_bytes is str"),
        ({"key": None}, "key is NoneType"),
    ],
)
def test_a_malformed_stored_stand_in_is_refused(changes, why):
    stored = wire.stored_for(a_request(), "payloads", "c0ffee/request", 10)

    with pytest.raises(wire.EnvelopeError, match=why):
        wire.decode(body({**copy.deepcopy(stored), **changes}))


# --- Stored envelopes --------------------------------------------------------


def a_reply(**outcome: Any) -> dict[str, Any]:
    return {
        "v": wire.FORMAT_VERSION,
        "kind": "reply",
        "correlation_id": "c0ffee",
        "request_id": "r-1",
        **outcome,
    }


def test_a_stored_reply_keeps_its_payload_as_raw_text_after_the_header():
    payload = '{"quote": "\\"", "text": "caf\u00e9"}'
    reply = a_reply(payload=payload)

    data = wire.encode_for_storage(reply)

    head, body = data.split(b"\n", 1)
    assert json.loads(head) == {**a_reply(), "bulk": "payload"}
    assert body == payload.encode("utf-8")  # not escaped into a JSON string
    assert wire.read_from_storage(data)[0] == reply


@pytest.mark.parametrize(
    "envelope",
    [
        a_request(event={"text": "lone \ud800, \ufffe, \U0001f600", "n": [1.5, None]}),
        a_request(event="just a string"),
        a_reply(payload='"lone \udc80 kept"'),
        a_reply(payload_base64="AP8="),
        a_reply(error={"errorType": "ValueError", "errorMessage": "no"}),
    ],
    ids=["request", "string-event", "surrogate-payload", "bytes", "error"],
)
def test_every_envelope_comes_back_from_storage_unchanged(envelope):
    assert wire.read_from_storage(wire.encode_for_storage(envelope))[0] == envelope


def test_an_envelope_stored_whole_is_still_read():
    request = a_request()

    stored = wire.encode(request, limit_bytes=None).encode("utf-8")

    assert wire.read_from_storage(stored) == (request, wire.Bulk(None, ""))


def test_a_stored_request_is_read_with_its_event_text_as_stored():
    request = a_request(event={"b": [1, 2], "a": "caf\u00e9"})

    envelope, bulk = wire.read_from_storage(wire.encode_for_storage(request))

    assert envelope == request
    assert bulk == wire.Bulk("event", '{"b":[1,2],"a":"caf\u00e9"}')


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            b'{"v": 1, "kind": "reply", "correlation_id": "c", "request_id": "r", '
            b'"bulk": "credentials"}\nx',
            "bulk is 'credentials'",
        ),
        (
            b'{"v": 1, "kind": "reply", "correlation_id": "c", "request_id": "r", '
            b'"payload": "a", "bulk": "payload"}\nb',
            "bulk is 'payload'",
        ),
        (
            b'{"v": 1, "kind": "ack", "correlation_id": "c", "request_id": "r", '
            b'"bulk": "event"}\n{}',
            "bulk is 'event'",
        ),
        (b"[1]\nx", "not an object"),
    ],
    ids=["unknown-field", "field-twice", "ack", "not-an-object"],
)
def test_a_malformed_stored_envelope_is_refused(data, why):
    with pytest.raises(wire.EnvelopeError, match=why):
        wire.read_from_storage(data)[0]


def test_a_stored_request_whose_event_is_not_json_is_refused():
    head = {**a_request(), "bulk": "event"}
    del head["event"]

    data = json.dumps(head).encode() + b"\n{not json"

    with pytest.raises(wire.EnvelopeError, match="stored event is not JSON"):
        wire.read_from_storage(data)[0]


def test_a_stored_request_is_checked_like_one_sent_whole():
    head = {**a_request(), "bulk": "event"}
    del head["event"], head["credentials"]

    with pytest.raises(wire.EnvelopeError, match="lacks credentials"):
        wire.read_from_storage(json.dumps(head).encode() + b"\n{}")[0]


def test_lambdas_limits_are_the_documented_sizes():
    assert wire.LAMBDA_EVENT_MAX_BYTES == 6_291_456
    assert wire.LAMBDA_RESPONSE_MAX_BYTES == 6_291_556
