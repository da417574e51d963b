"""Which AWS service sent an event, told from the event's own shape.

Lambda does not say who invoked a function, nor whether the invocation was
synchronous; each service's event has a shape of its own, and that is what
both sides read: the proxy, to choose what to do while the lab is offline,
and the lab, to name the source of each invocation it shows. Record-based
events name their source in each record (`eventSource`, or `EventSource` for
SNS); HTTP events are told apart by their payload version and request
context; anything not recognised was a direct invoke as far as anyone can
tell.

Some services always invoke asynchronously (S3, SNS, EventBridge, CloudWatch
Logs): nobody waits for the result. SES says in its event which way its
receipt rule invokes. Everything else is taken to be synchronous, because it
may be: a direct Invoke with InvocationType=Event looks exactly like one with
RequestResponse from inside the function.

Standard library only: it is deployed with the proxy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any


class EventSource(Enum):
    """The services whose events are recognised, by their usual names."""

    S3 = "S3"
    SNS = "SNS"
    SQS = "SQS"
    SES = "SES"
    EVENTBRIDGE = "EventBridge"
    API_GATEWAY_REST = "API Gateway REST"
    API_GATEWAY_HTTP = "API Gateway HTTP"
    FUNCTION_URL = "function URL"
    LOAD_BALANCER = "Application Load Balancer"
    KINESIS = "Kinesis"
    DYNAMODB = "DynamoDB"
    CLOUDWATCH_LOGS = "CloudWatch Logs"
    DIRECT = "direct invoke"


# Services that invoke a function asynchronously, always: Lambda queues the
# event and the service never sees the result.
ASYNCHRONOUS_SOURCES = frozenset(
    {
        EventSource.S3,
        EventSource.SNS,
        EventSource.EVENTBRIDGE,
        EventSource.CLOUDWATCH_LOGS,
    }
)

# Services that turn the function's result into an HTTP response.
HTTP_SOURCES = frozenset(
    {
        EventSource.API_GATEWAY_REST,
        EventSource.API_GATEWAY_HTTP,
        EventSource.FUNCTION_URL,
        EventSource.LOAD_BALANCER,
    }
)

# The value of a record's eventSource (EventSource for SNS) per service.
_RECORD_SOURCES = {
    "aws:s3": EventSource.S3,
    "aws:sns": EventSource.SNS,
    "aws:sqs": EventSource.SQS,
    "aws:ses": EventSource.SES,
    "aws:kinesis": EventSource.KINESIS,
    "aws:dynamodb": EventSource.DYNAMODB,
}

# Function URLs answer on https://URL-ID.lambda-url.REGION.on.aws.
_FUNCTION_URL_DOMAIN = ".lambda-url."

# The reason phrases of the statuses the proxy answers with itself; a load
# balancer wants one in statusDescription.
_REASONS = {202: "Accepted", 503: "Service Unavailable"}


def event_source(event: Any) -> EventSource:
    """Name the service that sent `event`; DIRECT when its shape is not known."""
    if not isinstance(event, Mapping):
        return EventSource.DIRECT
    return (
        _record_source(event)
        or _http_source(event)
        or _other_source(event)
        or EventSource.DIRECT
    )


def is_asynchronous(source: EventSource, event: Any = None) -> bool:
    """Whether the service invoked asynchronously, so no caller waits for a result."""
    if source is EventSource.SES:
        return bool(_ses_invocation_type(event) == "Event")
    return source in ASYNCHRONOUS_SOURCES


def http_response(
    source: EventSource, status: int, message: str, event: Any = None
) -> dict[str, Any]:
    """An HTTP response, in the shape `source` expects, with a JSON message body.

    A load balancer whose target group sends multi-value headers (`event`
    has them) wants the response's headers in that form too.
    """
    content_type = "application/json"
    response: dict[str, Any] = {"statusCode": status}
    if isinstance(event, Mapping) and "multiValueHeaders" in event:
        response["multiValueHeaders"] = {"Content-Type": [content_type]}
    else:
        response["headers"] = {"Content-Type": content_type}
    response["body"] = json.dumps({"message": message})
    if source is EventSource.LOAD_BALANCER:
        response["statusDescription"] = f"{status} {_REASONS.get(status, '')}".strip()
        response["isBase64Encoded"] = False
    return response


def _record_source(event: Mapping[str, Any]) -> EventSource | None:
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return None
    first = records[0]
    if not isinstance(first, Mapping):
        return None
    name = first.get("eventSource") or first.get("EventSource")
    return _RECORD_SOURCES.get(name) if isinstance(name, str) else None


def _http_source(event: Mapping[str, Any]) -> EventSource | None:
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return None
    if "elb" in context:
        return EventSource.LOAD_BALANCER
    version = event.get("version")
    if version == "2.0":
        domain = context.get("domainName")
        if isinstance(domain, str) and _FUNCTION_URL_DOMAIN in domain:
            return EventSource.FUNCTION_URL
        return EventSource.API_GATEWAY_HTTP
    if "httpMethod" not in event:
        return None
    # HTTP APIs send payload format 1.0 with its version; REST APIs send none.
    if version == "1.0":
        return EventSource.API_GATEWAY_HTTP
    return EventSource.API_GATEWAY_REST


def _ses_invocation_type(event: Any) -> Any:
    # A receipt rule's Lambda action names its invocation type in each record.
    try:
        return event["Records"][0]["ses"]["receipt"]["action"]["invocationType"]
    except (KeyError, IndexError, TypeError):
        return None


def _other_source(event: Mapping[str, Any]) -> EventSource | None:
    if "detail-type" in event and "source" in event:
        return EventSource.EVENTBRIDGE
    logs = event.get("awslogs")
    if isinstance(logs, Mapping) and "data" in logs:
        return EventSource.CLOUDWATCH_LOGS
    return None
