"""Envelopes too large for SQS go through the payload bucket and come back exact."""

from __future__ import annotations

import io
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambda_proxy import wire
from lambda_proxy.payloads import PayloadStore, StoredBodyGoneError, object_key

BUCKET = "mless-payloads"


class FakeS3:
    """Holds objects in memory, answering as S3's client does."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            raise ClientError(
                {"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject"
            )
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def delete_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.objects.pop((Bucket, Key), None)
        return {}


def a_reply(payload: str) -> wire.Reply:
    return {
        "v": wire.FORMAT_VERSION,
        "kind": "reply",
        "correlation_id": "c0ffee",
        "request_id": "r-1",
        "payload": payload,
    }


def test_an_envelope_that_fits_travels_in_the_message_itself():
    s3 = FakeS3()
    reply = a_reply('{"small": true}')

    sent = PayloadStore(BUCKET, s3).body_for(reply)

    assert wire.decode(sent) == reply
    assert s3.objects == {}


def test_a_large_envelope_is_stored_and_read_back_byte_for_byte():
    s3 = FakeS3()
    store = PayloadStore(BUCKET, s3)
    reply = a_reply('"' + '\u00e9\\"x' * 400_000 + '"')

    sent = store.body_for(reply)

    stand_in = wire.decode(sent)
    assert stand_in["kind"] == "stored"
    assert len(sent.encode()) < 1000
    assert list(s3.objects) == [(BUCKET, "c0ffee/reply")]
    assert store.open(stand_in) == reply


def test_discarding_removes_the_stored_object():
    s3 = FakeS3()
    store = PayloadStore(BUCKET, s3)
    stand_in = wire.decode(store.body_for(a_reply("x" * 2_000_000)))

    store.discard(stand_in)

    assert s3.objects == {}
    with pytest.raises(StoredBodyGoneError, match="is gone"):
        store.open(stand_in)


def test_without_a_bucket_a_large_envelope_is_refused():
    with pytest.raises(wire.EnvelopeTooLargeError):
        PayloadStore(None, FakeS3()).body_for(a_reply("x" * 2_000_000))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"bucket": "someone-elses"}, "not in the stack's payload bucket"),
        ({"key": "other/reply"}, "does not name its correlation id"),
        ({"size_bytes": 12}, "not the 12 its message announced"),
        ({"correlation_id": "beef"}, "does not name its correlation id"),
    ],
)
def test_a_stand_in_that_does_not_match_its_object_is_refused(changes, why):
    s3 = FakeS3()
    store = PayloadStore(BUCKET, s3)
    stand_in = wire.decode(store.body_for(a_reply("x" * 2_000_000)))

    with pytest.raises(wire.EnvelopeError, match=why):
        store.open({**stand_in, **changes})


def test_a_stored_body_of_another_request_is_refused():
    s3 = FakeS3()
    store = PayloadStore(BUCKET, s3)
    stand_in = wire.decode(store.body_for(a_reply("x" * 2_000_000)))
    other = {**a_reply("y" * 2_000_000), "correlation_id": "beef"}
    s3.objects[(BUCKET, "c0ffee/reply")] = wire.encode(other, None).encode()

    with pytest.raises(wire.EnvelopeError, match="announced"):
        store.open(
            {**stand_in, "size_bytes": len(s3.objects[(BUCKET, "c0ffee/reply")])}
        )


def test_each_s3_call_goes_through_the_caller_given():
    s3 = FakeS3()
    calls: list[str] = []

    def call(operation: Any, **params: Any) -> Any:
        calls.append(operation.__name__)
        return operation(**params)

    store = PayloadStore(BUCKET, s3, call=call)
    stand_in = wire.decode(store.body_for(a_reply("x" * 2_000_000)))
    store.open(stand_in)
    store.discard(stand_in)

    assert calls == ["put_object", "_read_object", "delete_object"]


def test_keys_start_with_the_correlation_id():
    assert object_key("c0ffee", "request") == "c0ffee/request"
