"""Deletes the request messages the lab is done with, several to a call.

Every request the lab answers ends in a delete. Made one call each, at 32
concurrent callers that is a fifth of all the calls the endpoint serves for
an invocation. So a message to delete is queued, and one thread sends
whatever is queued at once, with DeleteMessageBatch (ten at most). Nothing
waits for a timer: an idle lab deletes each message the moment it is done,
while a busy one gathers the messages that finish during one call into the
next. A message stays hidden (`visibility`) until its delete is sent.

Entries SQS fails on its own side are sent again, twice at most. A delete
that fails for good leaves the message to come back after its visibility
timeout, when the record of what ran (`deliveries`) drops it. Stopping sends
what is queued first (`close`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from bridge.retry import AwsCaller

logger = logging.getLogger(__name__)

# SQS's DeleteMessageBatch takes at most ten entries.
BATCH_SIZE = 10
# How often an entry that SQS failed on its side (SenderFault false) is sent.
ENTRY_ATTEMPTS = 3

Message = dict[str, Any]


class Deletions:
    """Deletes messages from one queue in the background, batched as they come."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        aws: AwsCaller,
        *,
        within_seconds: float,
        let_go: Callable[[Message], None] | None = None,
    ) -> None:
        """`let_go` is called for each message as its delete is sent: the lab
        stops keeping it hidden then (`HeldMessages.let_go`)."""
        self._sqs = sqs
        self._let_go = let_go
        self._queue_url = queue_url
        self._aws = aws
        self._within_seconds = within_seconds
        # None asks the thread to stop once what came before it is sent.
        self._waiting: queue.SimpleQueue[_Delete | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def delete(self, message: Message, after: Callable[[], None] | None = None) -> None:
        """Delete the message soon; after `close`, now, on the calling thread.

        `after` runs once the message is deleted, and not if it could not be.
        """
        delete = _Delete(message, after)
        with self._lock:
            if not self._closed:
                self._start()
                self._waiting.put(delete)
                return
        self._send([delete])

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

    def _next_batch(self) -> tuple[list[_Delete], bool]:
        """What is queued, up to a batch, waiting only for the first; and
        whether the thread was asked to stop."""
        first = self._waiting.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < BATCH_SIZE:
            try:
                delete = self._waiting.get_nowait()
            except queue.Empty:
                break
            if delete is None:
                return batch, True
            batch.append(delete)
        return batch, False

    def _send(self, deletes: list[_Delete]) -> None:
        if self._let_go is not None:
            for delete in deletes:
                self._let_go(delete.message)
        for attempt in range(1, ENTRY_ATTEMPTS + 1):
            try:
                response = self._aws.call(
                    self._sqs.delete_message_batch,
                    within_seconds=self._within_seconds,
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": d.message["ReceiptHandle"]}
                        for index, d in enumerate(deletes)
                    ],
                )
            except Exception as exc:
                for delete in deletes:
                    _could_not_delete(delete.message, exc)
                return
            # A batch call that succeeds may still fail some of its entries.
            failed = {int(f["Id"]): f for f in response.get("Failed", [])}
            again = []
            for index, delete in enumerate(deletes):
                failure = failed.get(index)
                if failure is None:
                    _run_after(delete)
                elif not failure.get("SenderFault") and attempt < ENTRY_ATTEMPTS:
                    again.append(delete)
                else:
                    _could_not_delete(delete.message, _reason(failure))
            if not again:
                return
            deletes = again


class _Delete(NamedTuple):
    message: Message
    after: Callable[[], None] | None


def _run_after(delete: _Delete) -> None:
    if delete.after is None:
        return
    try:
        delete.after()
    except Exception:
        logger.exception(
            "Finishing after deleting message %s failed", delete.message["MessageId"]
        )


def _reason(failed: dict[str, Any]) -> str:
    code = str(failed.get("Code", "an unnamed error"))
    text = failed.get("Message")
    return f"{code}: {text}" if text else code


def _could_not_delete(message: Message, why: object) -> None:
    # It returns after its visibility timeout; the record drops it.
    logger.warning("Could not delete message %s: %s", message["MessageId"], why)
