"""Wakes: messages a stopping lab sends itself so that its long polls return.

A lab that stops must wait for the long polls it has out (up to 20 s each):
SQS may hand a message to a poll nobody waits for, and that message would
stay hidden for a whole visibility timeout. So an idle lab took up to 20 s
to stop. Instead, a stopping lab sends one *wake* to the request queue for
each receiver still polling; each poll returns at once with a wake or a
request, the requests are made visible again, and the wakes are deleted.

A wake is not an envelope: it never runs and never reaches a proxy. One left
in the queue (its poll had already returned with something else) is deleted
by whichever lab receives it next.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.retry import AwsCaller

logger = logging.getLogger(__name__)

WAKE_BODY = '{"v":1,"kind":"wake"}'
# How long sending wakes may keep retrying: a stop waits for nothing longer.
SEND_WITHIN_SECONDS = 2.0
# SQS's SendMessageBatch takes at most ten entries.
BATCH_SIZE = 10


def is_wake(message: dict[str, Any]) -> bool:
    """Whether a received message is a wake: this lab's, or another's."""
    return bool(message.get("Body") == WAKE_BODY)


def send_wakes(sqs: Any, queue_url: str, count: int, aws: AwsCaller) -> None:
    """Send `count` wakes (ten at most) to the request queue; a failure, or
    an entry SQS refuses, leaves those polls to end on their own."""
    entries = [
        {"Id": str(index), "MessageBody": WAKE_BODY}
        for index in range(min(count, BATCH_SIZE))
    ]
    try:
        aws.call(
            sqs.send_message_batch,
            within_seconds=SEND_WITHIN_SECONDS,
            QueueUrl=queue_url,
            Entries=entries,
        )
    except Exception as exc:
        # The polls then end on their own, up to their wait time later.
        logger.info("Could not wake the lab's long polls: %s", exc)
