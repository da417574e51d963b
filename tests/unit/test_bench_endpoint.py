"""The endpoint's meter tallies each call by operation and queue."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from bench.endpoint import RESET_PATH, STATS_PATH, Meter


def busy_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Reads its body as moto would, spins, and answers 100 bytes."""
    environ["wsgi.input"].read()
    until = time.thread_time() + 0.01
    while time.thread_time() < until:
        pass
    start_response("200 OK", [])
    return [b"x" * 60, b"y" * 40]


def call(meter: Meter, path: str = "/", body: bytes = b"", **headers: str) -> bytes:
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": "POST" if body else "GET",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    return b"".join(meter(environ, lambda status, headers: None))


def sqs_call(meter: Meter, operation: str, queue_name: str) -> bytes:
    body = json.dumps({"QueueUrl": f"http://127.0.0.1/123456789012/{queue_name}"})
    return call(meter, body=body.encode(), x_amz_target=f"AmazonSQS.{operation}")


def test_sqs_calls_are_tallied_by_operation_and_kind_of_queue():
    meter = Meter(busy_app)

    for _ in range(3):
        assert sqs_call(meter, "SendMessage", "mless-RequestQueue-ABC") == (
            b"x" * 60 + b"y" * 40
        )
    sqs_call(meter, "ReceiveMessage", "mless-reply-0f3a")
    sqs_call(meter, "ReceiveMessage", "floor-replies-9c1d")
    call(meter, "/mless-payloads/some/key")

    tallies = json.loads(call(meter, STATS_PATH))
    assert set(tallies) == {
        "SendMessage mless request queue",
        "ReceiveMessage mless reply queues",
        "ReceiveMessage raw reply queues",
        "GET mless-payloads",
    }
    count, cpu_ms, bytes_in, bytes_out = tallies["SendMessage mless request queue"]
    assert count == 3
    assert 25 <= cpu_ms < 200
    assert bytes_in == 3 * len(
        json.dumps({"QueueUrl": "http://127.0.0.1/123456789012/mless-RequestQueue-ABC"})
    )
    assert bytes_out == 300


def test_reset_starts_the_tallies_again():
    meter = Meter(busy_app)
    sqs_call(meter, "DeleteMessageBatch", "mless-RequestQueue-ABC")

    assert json.loads(call(meter, RESET_PATH)) == {}
    assert json.loads(call(meter, STATS_PATH)) == {}
