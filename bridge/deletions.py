"""Deletes the request messages the lab is done with, several to a call.

Every request the lab answers ends in a delete. Made one call each, at 32
concurrent callers that is a quarter of what the lab asks of the request
queue. So a message to delete is queued, and one thread sends whatever is
queued at once, with DeleteMessageBatch (ten at most). Nothing waits for a
timer: an idle lab deletes each message the moment it is done, while a busy
one gathers the messages that finish during one call into the next.

A delete that fails leaves the message to come back after its visibility
timeout, when the record of what ran (`deliveries`) drops it. Stopping sends
what is queued first (`close`).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from bridge.retry import AwsCaller

logger = logging.getLogger(__name__)

# SQS's DeleteMessageBatch takes at most ten entries.
BATCH_SIZE = 10

Message = dict[str, Any]


class Deletions:
    """Deletes messages from one queue in the background, batched as they come."""

    def __init__(
        self, sqs: Any, queue_url: str, aws: AwsCaller, *, within_seconds: float
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._aws = aws
        self._within_seconds = within_seconds
        # None asks the thread to stop once what came before it is sent.
        self._waiting: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def delete(self, message: Message) -> None:
        """Delete the message soon; after `close`, now, on the calling thread."""
        with self._lock:
            if not self._closed:
                self._start()
                self._waiting.put(message)
                return
        self._send([message])

    def close(self, timeout: float) -> bool:
        """Send what is queued, then stop; whether that was done within `timeout`."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        self._waiting.put(None)
        thread.join(max(0.0, timeout))
        return not thread.is_alive()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mless-deletions", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                try:
                    self._send(batch)
                except Exception:
                    logger.exception("Deleting %d message(s) failed", len(batch))
            if stop:
                return

    def _next_batch(self) -> tuple[list[Message], bool]:
        """What is queued, up to a batch, waiting only for the first; and
        whether the thread was asked to stop."""
        first = self._waiting.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < BATCH_SIZE:
            try:
                message = self._waiting.get_nowait()
            except queue.Empty:
                break
            if message is None:
                return batch, True
            batch.append(message)
        return batch, False

    def _send(self, messages: list[Message]) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ]
        try:
            response = self._aws.call(
                self._sqs.delete_message_batch,
                within_seconds=self._within_seconds,
                QueueUrl=self._queue_url,
                Entries=entries,
            )
        except Exception as exc:
            for message in messages:
                _could_not_delete(message, exc)
            return
        # A batch call that succeeds may still fail some of its entries.
        for failed in response.get("Failed", []):
            why = f"{failed.get('Code')}: {failed.get('Message', '')}".rstrip(": ")
            _could_not_delete(messages[int(failed["Id"])], why)


def _could_not_delete(message: Message, why: object) -> None:
    # It returns after its visibility timeout; the record drops it.
    logger.warning("Could not delete message %s: %s", message["MessageId"], why)
