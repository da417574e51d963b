"""The proxy environment's reply queue, and waiting on it for one reply.

Each proxy execution environment owns one SQS queue, created on first use
under the stack's name prefix and reused while the environment lives. An
environment serves one invocation at a time, so whatever arrives on its queue
is either the reply it waits for, an ack for it, or something late from an
earlier invocation that timed out; the correlation id tells them apart and the
late ones are discarded. No two callers ever share a queue, so a reply can
only reach its own caller, and no receiver ever sees another's messages.

The queue is encrypted (SQS-managed keys) and its policy refuses any access
without TLS, as the stack's own queues do. A reply too large for one message
arrives as a stored stand-in: its body is read from the payload bucket and
deleted there at once (see `payloads`).

The queue needs, in the proxy's role: sqs:CreateQueue, sqs:TagQueue,
sqs:GetQueueUrl, sqs:ReceiveMessage and sqs:DeleteMessage on
arn:aws:sqs:REGION:ACCOUNT:PREFIX*.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from lambda_proxy import wire
from lambda_proxy.payloads import PayloadStore, StoredBodyGoneError

logger = logging.getLogger(__name__)

# A reply left behind by a timed-out invocation is useless after the proxy's
# own timeout (at most 900 s); keep messages a little longer, then let SQS
# drop them.
REPLY_RETENTION_SECONDS = 960

# SQS's longest long poll.
MAX_WAIT_SECONDS = 20

# The variable the stack sets to the payload bucket's name.
PAYLOAD_BUCKET = "MLESS_PAYLOAD_BUCKET"


class LabTimeoutError(Exception):
    """The lab did not pick up the request before the proxy had to answer."""


class ReplyQueue:
    """One proxy environment's queue of replies from the lab.

    `payloads` reads replies too large for one message; by default, from the
    bucket that MLESS_PAYLOAD_BUCKET names.
    """

    def __init__(
        self, sqs: Any, url: str, payloads: PayloadStore | None = None
    ) -> None:
        self._sqs = sqs
        self.url = url
        self._payloads = payloads or PayloadStore(os.environ.get(PAYLOAD_BUCKET))

    @classmethod
    def create(
        cls,
        sqs: Any,
        name_prefix: str,
        function_name: str,
        *,
        function_arn: str = "",
        payloads: PayloadStore | None = None,
    ) -> ReplyQueue:
        """Create this environment's queue; its name is the prefix plus an id.

        `function_arn` (the invoked function's) gives the partition, region
        and account of the queue's ARN, which its TLS-only policy names.
        """
        name = f"{name_prefix}{uuid.uuid4().hex}"
        attributes = {
            "MessageRetentionPeriod": str(REPLY_RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true",
        }
        queue_arn = _queue_arn(function_arn, name)
        if queue_arn:
            attributes["Policy"] = tls_only_policy(queue_arn)
        response = sqs.create_queue(
            QueueName=name,
            Attributes=attributes,
            tags={"mless:function": function_name[:256]},
        )
        return cls(sqs, response["QueueUrl"], payloads)

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
                envelope = self._take(message, correlation_id)
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

    def _take(
        self, message: dict[str, Any], correlation_id: str
    ) -> wire.Envelope | None:
        """Delete a received message and return its envelope, if it is one."""
        self._sqs.delete_message(
            QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"]
        )
        try:
            envelope = wire.decode(message["Body"])
            if envelope["kind"] != "stored":
                return envelope
            if envelope["correlation_id"] != correlation_id:
                self._discard_late(envelope)
                return None
            return self._open(envelope)
        except (wire.EnvelopeError, StoredBodyGoneError) as exc:
            logger.warning(
                "Discarded message %s on the reply queue: %s", message["MessageId"], exc
            )
            return None

    def _open(self, stored: wire.Stored) -> wire.Envelope:
        envelope = self._payloads.open(stored)
        self._payloads.discard(stored)
        return envelope

    def _discard_late(self, stored: wire.Stored) -> None:
        # Nobody else will come for a late reply's body; should deleting it
        # fail, the bucket's lifecycle rule removes it within a day.
        try:
            self._payloads.discard(stored)
        except ClientError as exc:
            logger.warning("Left a late reply's body in the payload bucket: %s", exc)


def tls_only_policy(queue_arn: str) -> str:
    """A queue policy that refuses every request made without TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def _queue_arn(function_arn: str, queue_name: str) -> str:
    # arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    parts = function_arn.split(":")
    if len(parts) < 7 or parts[0] != "arn":
        return ""
    partition, region, account = parts[1], parts[3], parts[4]
    return f"arn:{partition}:sqs:{region}:{account}:{queue_name}"


def _now_ms() -> int:
    return int(time.time() * 1000)
