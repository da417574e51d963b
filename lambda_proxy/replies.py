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
arrives as a stored stand-in: its body is read from the payload bucket (see
`payloads`).

What a wait is done with (each message received, each stored body read) is
deleted off the caller's path, by a thread of the environment: the caller
gets its answer one SQS call sooner. In Lambda the thread freezes with the
environment between invocations and carries on when it thaws. A message
whose delete comes too late shows up again on this queue and is discarded
by its correlation id; a body left behind goes with the bucket's lifecycle
rule.

The queue needs, in the proxy's role: sqs:CreateQueue, sqs:TagQueue,
sqs:GetQueueUrl, sqs:ReceiveMessage and sqs:DeleteMessage on
arn:aws:sqs:REGION:ACCOUNT:PREFIX*.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

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
        self.cleanup = Cleanup()

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
        """Return a received message's envelope, if it is one; delete it later."""
        self.cleanup.later(
            functools.partial(
                self._sqs.delete_message,
                QueueUrl=self.url,
                ReceiptHandle=message["ReceiptHandle"],
            )
        )
        try:
            envelope = wire.decode(message["Body"])
            if envelope["kind"] != "stored":
                return envelope
            if envelope["correlation_id"] != correlation_id:
                self.cleanup.later(functools.partial(self._payloads.discard, envelope))
                return None
            return self._open(envelope)
        except (wire.EnvelopeError, StoredBodyGoneError) as exc:
            logger.warning(
                "Discarded message %s on the reply queue: %s", message["MessageId"], exc
            )
            return None

    def _open(self, stored: wire.Stored) -> wire.Envelope:
        envelope = self._payloads.open(stored)
        self.cleanup.later(functools.partial(self._payloads.discard, stored))
        return envelope


class Cleanup:
    """Runs deletes one after another on a thread of their own, in order."""

    def __init__(self) -> None:
        self._actions: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def later(self, action: Callable[[], object]) -> None:
        """Run `action` soon; a failure is logged, never raised."""
        with self._idle:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mless-cleanup", daemon=True
                )
                self._thread.start()
        self._actions.put(action)

    def wait(self, timeout: float) -> bool:
        """Wait until every action so far has run; False at the timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            action = self._actions.get()
            try:
                action()
            except Exception as exc:
                # Should a delete fail, the message shows up again and is
                # discarded; a body goes with the bucket's lifecycle rule.
                logger.warning("Could not delete what a reply left: %s", exc)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()


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
