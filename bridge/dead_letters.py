"""The dead-letter queue: where a message that must never run ends, logged once.

A message on the request queue that is not a request the lab may run (not
JSON, an unknown format version, missing or mistyped fields, a reply queue
outside the stack, a body outside the payload bucket) goes, body unchanged,
to the stack's dead-letter queue with two message attributes: MlessReason
(why) and MlessMessageId (its id on the request queue). Then it is deleted
from the request queue. Its id is remembered, so another copy of the same
message is deleted without a second log line or a second dead letter.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from bridge.retry import AwsCaller
from lambda_proxy import wire

logger = logging.getLogger(__name__)

# Message ids already dead-lettered that the lab remembers.
REMEMBERED_MESSAGES = 10_000
SEND_SECONDS = 60.0


class DeadLetters:
    """Moves messages that must never run to the dead-letter queue."""

    def __init__(self, sqs: Any, queue_url: str | None, aws: AwsCaller) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._aws = aws
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.count = 0

    def take(self, message: dict[str, Any], why: str) -> bool:
        """Dead-letter a message, unless done before; True when it may be deleted.

        False means the dead-letter queue could not be reached: the message
        must stay, to come back and be tried again.
        """
        message_id = message.get("MessageId", "")
        if not self._first_time(message_id):
            return True
        logger.error(
            "Message %s is not a request the lab can run (%s); it goes to the "
            "dead-letter queue",
            message_id,
            why,
        )
        if self._send(message, why):
            return True
        with self._lock:
            self._seen.pop(message_id, None)
        return False

    def _first_time(self, message_id: str) -> bool:
        with self._lock:
            if message_id in self._seen:
                return False
            self._seen[message_id] = None
            while len(self._seen) > REMEMBERED_MESSAGES:
                self._seen.popitem(last=False)
            return True

    def _send(self, message: dict[str, Any], why: str) -> bool:
        if not self._queue_url:
            logger.warning("The stack has no dead-letter queue; the message is dropped")
            return True
        body = message["Body"]
        attributes = _attributes(message.get("MessageId", ""), why)
        if len(body.encode("utf-8")) + _size(attributes) > wire.SQS_MAX_MESSAGE_BYTES:
            attributes = {}  # no room beside the body: the log line says why
        try:
            self._aws.call(
                self._sqs.send_message,
                within_seconds=SEND_SECONDS,
                QueueUrl=self._queue_url,
                MessageBody=body,
                MessageAttributes=attributes,
            )
        except Exception as exc:
            logger.error(
                "Could not move message %s to the dead-letter queue (%s); it "
                "returns to the request queue",
                message.get("MessageId"),
                exc,
            )
            return False
        with self._lock:
            self.count += 1
        return True


def _attributes(message_id: str, why: str) -> dict[str, Any]:
    return {
        "MlessReason": {"DataType": "String", "StringValue": why[:1024]},
        "MlessMessageId": {"DataType": "String", "StringValue": message_id or "?"},
    }


def _size(attributes: dict[str, Any]) -> int:
    # SQS counts each attribute's name, type and value toward the message size.
    return sum(
        len(name) + len(value["DataType"]) + len(value["StringValue"].encode("utf-8"))
        for name, value in attributes.items()
    )
