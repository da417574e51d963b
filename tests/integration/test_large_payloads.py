"""Events and responses up to Lambda's limit travel byte for byte; larger ones fail.

Bodies over one SQS message (1 MiB) go through the stack's payload bucket;
each test also checks that nothing is left in it afterwards.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from typing import Any

import pytest
from botocore.exceptions import ClientError
from reliability_support import wait_until

from lambda_proxy import wire

SIZES = [200_000, 1_048_576, 5_000_000]
# What `reliability.sized` answers before the response bytes: a SHA-256 in
# hex, a space, the blob's length, a newline.
SUMMARY_BYTES = len(hashlib.sha256(b"").hexdigest()) + len(" 0\n")


def a_blob(size: int, seed: int) -> str:
    """Text of `size` UTF-8 bytes with characters that JSON and SQS must escape."""
    awkward = string.printable + '"\\\u00e9\u2603\U0001f600\x00\x1f\ufffe'
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        character = rng.choice(awkward)
        width = len(character.encode("utf-8"))
        if total + width > size:
            character, width = "x", 1
        parts.append(character)
        total += width
    return "".join(parts)


def objects_in(local_cloud: Any) -> set[str]:
    listing = local_cloud.clients.client("s3").list_objects_v2(
        Bucket=local_cloud.stack.payload_bucket_name
    )
    return {item["Key"] for item in listing.get("Contents", [])}


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size}B")
def test_an_event_and_a_response_of_this_size_travel_byte_for_byte(
    deployed_function, local_cloud, size
):
    name = deployed_function("reliability.sized", timeout_seconds=20)
    left_before = objects_in(local_cloud)
    blob = a_blob(size, seed=size)
    # As UTF-8 text: escaped to ASCII, the largest event would pass 6 MiB.
    event = json.dumps(
        {"blob": blob, "seed": size, "response_bytes": size}, ensure_ascii=False
    )

    result = local_cloud.lambda_service.invoke(name, event.encode())

    assert result.function_error is None, result.payload[:500]
    summary, response = result.payload.split(b"\n", 1)
    expected_summary = f"{hashlib.sha256(blob.encode()).hexdigest()} {size}"
    assert summary.decode() == expected_summary
    assert response == random.Random(size).randbytes(size)
    # The lab deletes the request's body after it has replied.
    wait_until(
        lambda: objects_in(local_cloud) == left_before,
        timeout=10,
        what="deleting the stored bodies",
    )


def test_a_response_of_exactly_lambdas_limit_is_returned(
    deployed_function, local_cloud
):
    name = deployed_function("reliability.sized", timeout_seconds=20)
    response_bytes = wire.LAMBDA_RESPONSE_MAX_BYTES - SUMMARY_BYTES
    event = {"seed": 1, "response_bytes": response_bytes}

    result = local_cloud.lambda_service.invoke(name, json.dumps(event).encode())

    assert result.function_error is None, result.payload[:500]
    assert len(result.payload) == wire.LAMBDA_RESPONSE_MAX_BYTES


def test_a_response_one_byte_over_lambdas_limit_fails_with_lambdas_error(
    deployed_function, local_cloud
):
    name = deployed_function("reliability.sized", timeout_seconds=20)
    response_bytes = wire.LAMBDA_RESPONSE_MAX_BYTES - SUMMARY_BYTES + 1
    event = {"seed": 1, "response_bytes": response_bytes}

    result = local_cloud.lambda_service.invoke(name, json.dumps(event).encode())

    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert error["errorMessage"] == (
        "Response payload size (6291557 bytes) exceeded maximum allowed payload "
        "size (6291556 bytes)."
    )


def test_an_event_one_byte_over_lambdas_limit_is_refused_before_it_runs(
    deployed_function, local_cloud, tmp_path
):
    name = deployed_function(
        "reliability.record", environment={"RECORD_DIR": str(tmp_path)}
    )
    head, tail = b'{"id": "too-large", "blob": "', b'"}'
    padding = wire.LAMBDA_EVENT_MAX_BYTES + 1 - len(head) - len(tail)
    event = head + b"x" * padding + tail

    with pytest.raises(ClientError) as refused:
        local_cloud.lambda_service.invoke(name, event)

    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert not (tmp_path / "executions.log").exists()
