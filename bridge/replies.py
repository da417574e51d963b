"""The lab's side of the proxies' reply queues: acks and replies.

The poller has checked, before running a request, that its reply queue is one
of the stack's own; nothing here sends anywhere else. A reply too large for
one SQS message travels through the payload bucket (`lambda_proxy.payloads`);
without a payload bucket it becomes an error the caller can read. Each send
is retried for as long as its caller may wait for it.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from bridge.clock import now_ms
from bridge.environments.process import Outcome
from bridge.retry import AwsCaller
from lambda_proxy import wire
from lambda_proxy.payloads import PayloadStore

logger = logging.getLogger(__name__)

# An ack is worth sending only while the proxy has not given up on the lab.
ACK_SECONDS = 5.0
# A reply is worth sending for as long as its caller waits, and at least this
# long when the caller's deadline is near or already past.
MIN_REPLY_SECONDS = 5.0


class ReplySender:
    """Sends acks and replies to the proxies' reply queues."""

    def __init__(self, sqs: Any, payloads: PayloadStore, aws: AwsCaller) -> None:
        self._sqs = sqs
        self._payloads = payloads
        self._aws = aws

    def ack(self, request: wire.Request) -> None:
        """Tell the proxy that the handler has started."""
        reply_to = request["reply_to"]
        if not reply_to:
            return
        try:
            self._aws.call(
                self._sqs.send_message,
                within_seconds=ACK_SECONDS,
                QueueUrl=reply_to,
                MessageBody=wire.encode(wire.ack_for(request)),
            )
        except Exception as exc:
            logger.warning("Could not ack request %s: %s", request["request_id"], exc)

    def send(self, queue_url: str, reply: wire.Reply, deadline_ms: int) -> bool:
        """Send a reply while its caller waits; False when it could not be sent."""
        within = max(MIN_REPLY_SECONDS, (deadline_ms - now_ms()) / 1000)
        try:
            try:
                body = self._payloads.body_for(reply)
            except wire.EnvelopeTooLargeError as exc:
                body = wire.encode(_too_large(reply, exc))
            self._aws.call(
                self._sqs.send_message,
                within_seconds=within,
                QueueUrl=queue_url,
                MessageBody=body,
            )
        except Exception as exc:
            logger.error(
                "Could not send the reply to request %s: %s",
                reply.get("request_id"),
                exc,
            )
            return False
        return True


def reply_to_outcome(request: wire.Request, outcome: Outcome) -> wire.Reply:
    """The reply that tells the proxy how an invocation ended."""
    if outcome.payload is not None:
        return wire.reply_for(request, payload=outcome.payload)
    if outcome.raw_payload is not None:
        encoded = base64.b64encode(outcome.raw_payload).decode("ascii")
        return wire.reply_for(request, payload_base64=encoded)
    return wire.reply_for(request, error=outcome.error or {})


def _too_large(reply: wire.Reply, exc: wire.EnvelopeTooLargeError) -> wire.Reply:
    request_id = reply.get("request_id", "")
    return {
        "v": wire.FORMAT_VERSION,
        "kind": "reply",
        "correlation_id": reply.get("correlation_id", ""),
        "request_id": request_id,
        "error": {
            "errorType": "Mless.PayloadTooLarge",
            "errorMessage": f"The response of request {request_id} could not be "
            f"carried back: {exc} The stack has no payload bucket for larger "
            "bodies; deploy it again with `mless deploy`.",
        },
    }
