"""Naming the service that sent an event, from the event's shape alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.event_source import EventSource, event_source

ROOT = Path(__file__).resolve().parents[2]


def _http_v2(domain: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "requestContext": {"domainName": domain, "http": {"method": "GET"}},
    }


EVENTS = [
    ({"Records": [{"eventSource": "aws:s3", "s3": {}}]}, EventSource.S3),
    ({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}, EventSource.SNS),
    ({"Records": [{"eventSource": "aws:sqs", "body": "x"}]}, EventSource.SQS),
    ({"Records": [{"eventSource": "aws:kinesis"}]}, EventSource.KINESIS),
    ({"Records": [{"eventSource": "aws:dynamodb"}]}, EventSource.DYNAMODB),
    (
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
        EventSource.EVENTBRIDGE,
    ),
    ({"awslogs": {"data": "H4sIAAAAAAAAA"}}, EventSource.CLOUDWATCH_LOGS),
    (
        {"resource": "/", "httpMethod": "GET", "requestContext": {"stage": "prod"}},
        EventSource.API_GATEWAY_REST,
    ),
    (
        {"version": "1.0", "httpMethod": "GET", "requestContext": {}},
        EventSource.API_GATEWAY_HTTP,
    ),
    (
        _http_v2("a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"),
        EventSource.API_GATEWAY_HTTP,
    ),
    (_http_v2("abcdefg.lambda-url.us-east-1.on.aws"), EventSource.FUNCTION_URL),
    (
        {"httpMethod": "GET", "requestContext": {"elb": {"targetGroupArn": "arn"}}},
        EventSource.LOAD_BALANCER,
    ),
    ({"name": "Ada"}, EventSource.DIRECT),
    ({"Records": []}, EventSource.DIRECT),
    ({"Records": [{"eventSource": "aws:kafka"}]}, EventSource.DIRECT),
    ([1, 2, 3], EventSource.DIRECT),
    ("just a string", EventSource.DIRECT),
    (None, EventSource.DIRECT),
]


@pytest.mark.parametrize(("event", "source"), EVENTS)
def test_each_services_event_is_named_after_the_service(event, source):
    assert event_source(event) is source


@pytest.mark.parametrize(
    ("sample", "source"),
    [
        ("examples/hash/events/s3-put.json", EventSource.S3),
        ("examples/http_api/events/get-hello.json", EventSource.API_GATEWAY_HTTP),
        ("examples/chain/events/s3-put.json", EventSource.S3),
        ("examples/chain/events/sqs-batch.json", EventSource.SQS),
        ("examples/node/events/greet.json", EventSource.DIRECT),
    ],
)
def test_the_examples_sample_events_are_named_rightly(sample, source):
    event = json.loads((ROOT / sample).read_text())

    assert event_source(event) is source
