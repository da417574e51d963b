"""Envelopes too large for one SQS message, carried through the stack's payload bucket.

An envelope over SQS's limit (1 MiB) is written whole to the payload bucket
under `CORRELATION_ID/KIND`; its message carries a small `stored` envelope
naming the object instead. The receiver reads the object and deletes it once
done with it: the proxy as soon as it has its reply, the lab only when the
request's own message is deleted, so that a request delivered again after
the lab was killed still finds its body. The bucket's lifecycle rule removes
any object no receiver came for.

Both sides use this module: the proxy with a boto3 client of its own,
created for the first large body only (cold start is the proxy's budget),
the lab with a caller that retries each S3 call. Standard library and boto3
only: it is deployed with the proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from lambda_proxy import wire

Caller = Callable[..., Any]
"""Runs one S3 call: `caller(operation, **params)` returns what it returns."""

# How S3 says an object is not there, by error code.
_MISSING = {"NoSuchKey", "404", "NotFound"}


class StoredBodyGoneError(Exception):
    """A stored envelope's object is no longer in the payload bucket."""


class PayloadStore:
    """Puts large envelopes in the payload bucket and reads them back."""

    def __init__(
        self, bucket: str | None, s3: Any | None = None, call: Caller | None = None
    ) -> None:
        self.bucket = bucket or None
        self._s3 = s3
        self._call: Caller = call or _call_directly
        self._lock = threading.Lock()

    def body_for(self, envelope: wire.Request | wire.Reply) -> str:
        """The SQS body that carries an envelope: itself, or a stored stand-in.

        Without a payload bucket, an envelope too large for SQS raises
        EnvelopeTooLargeError as `wire.encode` does.
        """
        # Each pass over a 5 MB event costs as much as putting it to S3. A
        # bulk longer than SQS's limit in characters is longer in bytes too:
        # it goes to the bucket without being encoded for a message first,
        # so a large event is written out once (a small one, twice).
        limit = wire.SQS_MAX_MESSAGE_BYTES
        bulk = wire.bulk_of(envelope)
        if len(bulk.text) <= limit:
            text = wire.encode(envelope, limit_bytes=None)
            if wire.size_in_bytes(text) <= limit:
                return text
        if self.bucket is None:
            size = wire.size_in_bytes(wire.encode(envelope, limit_bytes=None))
            raise wire.EnvelopeTooLargeError(envelope["kind"], size, limit)
        data = wire.encode_for_storage(envelope, bulk)
        key = object_key(envelope["correlation_id"], envelope["kind"])
        self._call(self._client().put_object, Bucket=self.bucket, Key=key, Body=data)
        stored = wire.stored_for(envelope, self.bucket, key, len(data))
        return wire.encode(stored)

    def open(self, stored: wire.Stored) -> wire.Envelope:
        """Read the envelope a stored stand-in names.

        Raises EnvelopeError when the stand-in or the object is not what it
        must be (another bucket or key, another size, another envelope), and
        StoredBodyGoneError when the object is not there.
        """
        return self.open_with_bulk(stored)[0]

    def open_with_bulk(self, stored: wire.Stored) -> tuple[wire.Envelope, wire.Bulk]:
        """`open`, with the envelope's bulk as it was stored.

        See `wire.read_from_storage`.
        """
        self._check_place(stored)
        try:
            data = self._call(self._read_object, key=stored["key"])
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise StoredBodyGoneError(
                    f"s3://{self.bucket}/{stored['key']} is gone"
                ) from exc
            raise
        if len(data) != stored["size_bytes"]:
            raise wire.EnvelopeError(
                f"its stored body is {len(data)} bytes, not the "
                f"{stored['size_bytes']} its message announced"
            )
        envelope, bulk = wire.read_from_storage(data)
        if (
            envelope["kind"] != stored["body_of"]
            or envelope["correlation_id"] != stored["correlation_id"]
        ):
            raise wire.EnvelopeError(
                "its stored body is not the envelope its message announced"
            )
        return envelope, bulk

    def discard(self, stored: wire.Stored) -> None:
        """Delete a stored envelope's object; deleting one already gone is no error."""
        self._check_place(stored)
        self._call(self._client().delete_object, Bucket=self.bucket, Key=stored["key"])

    def _check_place(self, stored: wire.Stored) -> None:
        # Only objects this protocol writes are read or deleted: a message
        # cannot point either side at another bucket or at any other key.
        if self.bucket is None or stored["bucket"] != self.bucket:
            raise wire.EnvelopeError(
                f"its body is in bucket {stored['bucket'][:63]!r}, not in the "
                "stack's payload bucket"
            )
        if stored["key"] != object_key(stored["correlation_id"], stored["body_of"]):
            raise wire.EnvelopeError("its body's key does not name its correlation id")

    def _read_object(self, key: str) -> bytes:
        # Reading the body is part of the call: a connection lost half-way
        # through fails it as a whole, and the caller may try it again.
        response = self._client().get_object(Bucket=self.bucket, Key=key)
        data: bytes = response["Body"].read()
        return data

    def _client(self) -> Any:
        with self._lock:
            if self._s3 is None:
                self._s3 = boto3.client("s3")
            return self._s3


def object_key(correlation_id: str, kind: str) -> str:
    """Where the payload bucket keeps one envelope of one delivery."""
    return f"{correlation_id}/{kind}"


def _call_directly(operation: Callable[..., Any], **params: Any) -> Any:
    return operation(**params)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
