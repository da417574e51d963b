"""Keeps the request messages the lab holds hidden from every other receiver.

A received message stays invisible for the request queue's visibility
timeout, which the stack sets to the proxy's timeout. The lab may hold it
longer: a handler of an attached function may have a longer timeout, a
developer may pause on a breakpoint, a request may wait for a free execution
environment. So while the lab holds a message, it extends the message's
visibility (ChangeMessageVisibility) whenever less than half of it is left.

The lab lets a message go in one of three ways: it deletes it (done), it
`release`s it (visible again at once, for another receiver: on shutdown), or
it just stops extending it (it returns after the visibility timeout: a
message whose reply could not be sent).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from bridge.retry import AwsCaller

logger = logging.getLogger(__name__)

# SQS's ChangeMessageVisibilityBatch takes at most ten entries.
BATCH_SIZE = 10
# The extender wakes four times per visibility timeout, at most every 5 s.
MAX_TICK_SECONDS = 5.0
MIN_TICK_SECONDS = 0.2

Message = dict[str, Any]


@dataclass
class _Held:
    message: Message
    hidden_until: float  # time.monotonic()


class HeldMessages:
    """Extends the visibility of every message held, until it is let go."""

    def __init__(self, sqs: Any, queue_url: str, aws: AwsCaller) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._aws = aws
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.visibility_seconds: int | None = None

    @property
    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def start(self) -> None:
        """Start extending held messages in the background."""
        self._thread = threading.Thread(
            target=self._beat, name="mless-visibility", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop extending; held messages return after their visibility timeout."""
        self._stopping.set()

    def hold(self, message: Message, received_at: float) -> None:
        """Keep a message hidden from now on; `received_at` is time.monotonic()."""
        visibility = self.visibility_seconds or 0
        with self._lock:
            self._held[message["ReceiptHandle"]] = _Held(
                message, received_at + visibility
            )

    def let_go(self, message: Message) -> None:
        """Stop extending a message (it was deleted, or is left to return)."""
        with self._lock:
            self._held.pop(message["ReceiptHandle"], None)

    def release(self, messages: list[Message]) -> None:
        """Make messages visible to receivers again at once, and let them go."""
        for message in messages:
            self.let_go(message)
        for start in range(0, len(messages), BATCH_SIZE):
            batch = messages[start : start + BATCH_SIZE]
            self._change_visibility(batch, 0, within_seconds=5.0)

    def _beat(self) -> None:
        while not self._stopping.wait(self._tick_seconds()):
            try:
                self._extend_due()
            except Exception:
                logger.exception("Extending the visibility of held messages failed")

    def _tick_seconds(self) -> float:
        visibility = self.visibility_seconds or 0
        return max(MIN_TICK_SECONDS, min(MAX_TICK_SECONDS, visibility / 4))

    def _extend_due(self) -> None:
        visibility = self.visibility_seconds
        if not visibility:
            return
        now = time.monotonic()
        with self._lock:
            due = [
                held.message
                for held in self._held.values()
                if held.hidden_until - now < visibility / 2
            ]
        for start in range(0, len(due), BATCH_SIZE):
            batch = due[start : start + BATCH_SIZE]
            extended = self._change_visibility(
                batch, visibility, within_seconds=visibility / 4
            )
            with self._lock:
                for handle in extended:
                    if handle in self._held:
                        self._held[handle].hidden_until = now + visibility

    def _change_visibility(
        self, messages: list[Message], seconds: int, *, within_seconds: float
    ) -> list[str]:
        """Set the visibility timeout of up to ten messages; return the handles done."""
        entries = [
            {
                "Id": str(index),
                "ReceiptHandle": message["ReceiptHandle"],
                "VisibilityTimeout": seconds,
            }
            for index, message in enumerate(messages)
        ]
        try:
            response = self._aws.call(
                self._sqs.change_message_visibility_batch,
                within_seconds=within_seconds,
                QueueUrl=self._queue_url,
                Entries=entries,
            )
        except Exception as exc:
            logger.warning(
                "Could not set the visibility of %d held message(s) to %d s: %s",
                len(messages),
                seconds,
                exc,
            )
            return []
        for failure in response.get("Failed", []):
            # Usually a message deleted while this call was on its way.
            logger.debug(
                "Visibility of message %s unchanged: %s",
                messages[int(failure["Id"])].get("MessageId"),
                failure.get("Code"),
            )
        return [
            messages[int(done["Id"])]["ReceiptHandle"]
            for done in response.get("Successful", [])
        ]
