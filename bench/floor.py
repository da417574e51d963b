"""The floor: one request and one reply carried by bare SQS calls, nothing else.

An echo thread long-polls a request queue, sends each body to a reply queue
and deletes what it answered with one DeleteMessageBatch per receive, as the
lab does; the caller sends, long-polls the reply queue and deletes, as the
proxy does. This is what two SQS hops cost on the endpoint, with no envelope,
no execution environment and no proxy around them.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any


class SqsEcho:
    """A pair of queues and the threads that bounce messages between them."""

    def __init__(self, sqs: Any, echoers: int = 4) -> None:
        self._sqs = sqs
        suffix = uuid.uuid4().hex[:8]
        self.requests = sqs.create_queue(QueueName=f"floor-requests-{suffix}")[
            "QueueUrl"
        ]
        self._stopping = threading.Event()
        self._reply_queues: dict[int, str] = {}
        self._lock = threading.Lock()
        self._echoers = [
            threading.Thread(target=self._echo, daemon=True) for _ in range(echoers)
        ]
        for echoer in self._echoers:
            echoer.start()

    def reply_queue(self) -> str:
        """The calling thread's own reply queue, as each proxy environment has."""
        key = threading.get_ident()
        with self._lock:
            if key not in self._reply_queues:
                name = f"floor-replies-{uuid.uuid4().hex[:12]}"
                self._reply_queues[key] = self._sqs.create_queue(QueueName=name)[
                    "QueueUrl"
                ]
            return self._reply_queues[key]

    def round_trip(self) -> None:
        """Send one request and wait for its reply."""
        replies = self.reply_queue()
        self._sqs.send_message(QueueUrl=self.requests, MessageBody=replies)
        while True:
            received = self._sqs.receive_message(
                QueueUrl=replies, WaitTimeSeconds=20, MaxNumberOfMessages=10
            ).get("Messages", [])
            for message in received:
                self._sqs.delete_message(
                    QueueUrl=replies, ReceiptHandle=message["ReceiptHandle"]
                )
            if received:
                return

    def close(self) -> None:
        """Stop echoing; return once no thread calls the endpoint any more."""
        self._stopping.set()
        # Each returns from its one-second poll; one still polling when the
        # endpoint stops would fail with a connection error.
        for echoer in self._echoers:
            echoer.join()

    def _echo(self) -> None:
        while not self._stopping.is_set():
            received = self._sqs.receive_message(
                QueueUrl=self.requests, WaitTimeSeconds=1, MaxNumberOfMessages=10
            ).get("Messages", [])
            for message in received:
                self._sqs.send_message(QueueUrl=message["Body"], MessageBody="reply")
            if received:
                self._sqs.delete_message_batch(
                    QueueUrl=self.requests,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(received)
                    ],
                )
