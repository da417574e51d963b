"""The proxy environment's reply queue, and waiting on it for one reply.

Each proxy execution environment owns one SQS queue, created on first use
under the stack's name prefix and reused while the environment lives. An
environment serves one invocation at a time, so whatever arrives on its queue
is either the reply it waits for, an ack for it, or something late from an
earlier invocation that timed out; the correlation id tells them apart and the
late ones are discarded. No two callers ever share a queue, so a reply can
only reach its own caller, and no receiver ever sees another's messages.

The queue needs, in the proxy's role: sqs:CreateQueue, sqs:TagQueue,
sqs:GetQueueUrl, sqs:ReceiveMessage and sqs:DeleteMessage on
arn:aws:sqs:REGION:ACCOUNT:PREFIX*.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from lambda_proxy import wire

logger = logging.getLogger(__name__)

# A reply left behind by a timed-out invocation is useless after the proxy's
# own timeout (at most 900 s); keep messages a little longer, then let SQS
# drop them.
REPLY_RETENTION_SECONDS = 960

# SQS's longest long poll.
MAX_WAIT_SECONDS = 20


class LabTimeoutError(Exception):
    """The lab did not pick up the request before the proxy had to answer."""


class ReplyQueue:
    """One proxy environment's queue of replies from the lab."""

    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self.url = url

    @classmethod
    def create(cls, sqs: Any, name_prefix: str, function_name: str) -> ReplyQueue:
        """Create this environment's queue; its name is the prefix plus an id."""
        name = f"{name_prefix}{uuid.uuid4().hex}"
        response = sqs.create_queue(
            QueueName=name,
            Attributes={
                "MessageRetentionPeriod": str(REPLY_RETENTION_SECONDS),
                "SqsManagedSseEnabled": "true",
            },
            tags={"mless:function": function_name[:256]},
        )
        return cls(sqs, response["QueueUrl"])

    def wait(
        self, correlation_id: str, give_up_at_ms: int, deadline_ms: int
    ) -> wire.Reply | None:
        """Wait for the reply to one request.

        Without word from the lab, waiting stops at `give_up_at_ms` with
        LabTimeoutError. Once the lab has acked, the handler is running, so
        waiting goes on to `deadline_ms` and returns None when the handler is
        still running then (the caller lets Lambda's own timeout happen).
        """
        acked = False
        while True:
            stop_at_ms = deadline_ms if acked else give_up_at_ms
            left_ms = stop_at_ms - _now_ms()
            if left_ms <= 0:
                if acked:
                    return None
                raise LabTimeoutError(correlation_id)
            for message in self._receive(left_ms):
                envelope = self._take(message)
                if envelope is None or envelope["correlation_id"] != correlation_id:
                    continue
                if envelope["kind"] == "ack":
                    acked = True
                elif envelope["kind"] == "reply":
                    return envelope

    def _receive(self, left_ms: int) -> list[dict[str, Any]]:
        # Long-poll in whole seconds; in the last second poll briefly so the
        # proxy never oversleeps its own give-up time.
        wait_seconds = min(MAX_WAIT_SECONDS, left_ms // 1000)
        response = self._sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        if not messages and wait_seconds == 0:
            time.sleep(min(0.05, left_ms / 1000))
        return messages

    def _take(self, message: dict[str, Any]) -> wire.Envelope | None:
        """Delete a received message and return its envelope, if it is one."""
        self._sqs.delete_message(
            QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"]
        )
        try:
            return wire.decode(message["Body"])
        except wire.EnvelopeError as exc:
            logger.warning(
                "Discarded message %s on the reply queue: %s", message["MessageId"], exc
            )
            return None


def _now_ms() -> int:
    return int(time.time() * 1000)
