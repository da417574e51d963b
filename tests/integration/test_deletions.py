"""Answered request messages are deleted in batches, and none is left behind."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest
from botocore.stub import Stubber

from bridge.deletions import Deletions
from bridge.retry import AwsCaller


class DeleteCalls:
    """Counts the client's DeleteMessageBatch calls; can hold the first one."""

    def __init__(self, sqs: Any) -> None:
        self.sizes: list[int] = []
        self.first_started = threading.Event()
        self.let_first_go = threading.Event()
        self.let_first_go.set()
        sqs.meta.events.register(
            "before-parameter-build.sqs.DeleteMessageBatch", self._called
        )

    def _called(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.sizes.append(len(params["Entries"]))
        if len(self.sizes) == 1:
            self.first_started.set()
            self.let_first_go.wait(10)


@pytest.fixture
def sqs(moto_client) -> Any:
    return moto_client("sqs")


@pytest.fixture
def queue_url(sqs) -> Any:
    url = sqs.create_queue(QueueName=f"deletions-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def received(sqs: Any, queue_url: str, count: int) -> list[dict[str, Any]]:
    for index in range(count):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"request {index}")
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        messages += sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
    return messages


def messages_left(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return sum(int(count) for count in attributes.values())


def wait_for_empty(sqs: Any, queue_url: str) -> None:
    give_up_at = time.monotonic() + 5
    while messages_left(sqs, queue_url):
        assert time.monotonic() < give_up_at, "the queue did not empty within 5 s"
        time.sleep(0.05)


def test_one_message_is_deleted_at_once_without_waiting_for_others(sqs, queue_url):
    calls = DeleteCalls(sqs)
    deletions = Deletions(sqs, queue_url, AwsCaller(), within_seconds=5)
    [message] = received(sqs, queue_url, 1)

    deletions.delete(message)

    wait_for_empty(sqs, queue_url)
    assert calls.sizes == [1]
    assert deletions.close(5)


def test_messages_that_finish_during_a_call_go_together_in_the_next(sqs, queue_url):
    calls = DeleteCalls(sqs)
    calls.let_first_go.clear()
    deletions = Deletions(sqs, queue_url, AwsCaller(), within_seconds=5)
    messages = received(sqs, queue_url, 13)

    deletions.delete(messages[0])
    assert calls.first_started.wait(5)
    for message in messages[1:]:
        deletions.delete(message)
    calls.let_first_go.set()

    wait_for_empty(sqs, queue_url)
    # SQS takes ten entries a call at most.
    assert calls.sizes == [1, 10, 2]
    assert deletions.close(5)


def test_close_sends_what_is_queued_and_later_deletes_go_at_once(sqs, queue_url):
    calls = DeleteCalls(sqs)
    calls.let_first_go.clear()
    deletions = Deletions(sqs, queue_url, AwsCaller(), within_seconds=5)
    first, *queued, late = received(sqs, queue_url, 5)
    deletions.delete(first)
    assert calls.first_started.wait(5)
    for message in queued:
        deletions.delete(message)

    threading.Timer(0.3, calls.let_first_go.set).start()
    assert deletions.close(5)
    assert messages_left(sqs, queue_url) == 1

    deletions.delete(late)
    assert messages_left(sqs, queue_url) == 0
    assert calls.sizes == [1, 3, 1]


def test_a_message_sqs_will_not_delete_is_named_and_the_others_go(
    sqs, queue_url, caplog
):
    deletions = Deletions(sqs, queue_url, AwsCaller(), within_seconds=5)
    good = received(sqs, queue_url, 1)[0]
    stale = {"MessageId": "stale-message", "ReceiptHandle": "not-a-receipt-handle"}
    calls = DeleteCalls(sqs)
    calls.let_first_go.clear()
    blocker = received(sqs, queue_url, 1)[0]
    deletions.delete(blocker)
    assert calls.first_started.wait(5)
    finished = []
    deletions.delete(stale, after=lambda: finished.append("stale"))
    deletions.delete(good, after=lambda: finished.append("good"))
    calls.let_first_go.set()

    assert deletions.close(5)
    assert calls.sizes == [1, 2]
    assert messages_left(sqs, queue_url) == 0
    # What follows a delete (a stored body's removal) follows only a delete.
    assert finished == ["good"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("Could not delete message stale-message: ")
    assert "ReceiptHandleIsInvalid" in warnings[0]


def test_a_refused_call_is_logged_and_leaves_the_message_in_the_queue(
    sqs, queue_url, caplog
):
    deletions = Deletions(sqs, queue_url, AwsCaller(), within_seconds=5)
    [message] = received(sqs, queue_url, 1)
    wrong_queue = Deletions(sqs, queue_url + "-gone", AwsCaller(), within_seconds=5)

    wrong_queue.delete(message)
    assert wrong_queue.close(5)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"Could not delete message {message['MessageId']}: ")
    assert "NonExistentQueue" in warnings[0] or "QueueDoesNotExist" in warnings[0]
    assert messages_left(sqs, queue_url) == 1
    deletions.delete(message)
    wait_for_empty(sqs, queue_url)
    assert deletions.close(5)


def test_an_entry_sqs_failed_on_its_side_is_sent_again(moto_client):
    # moto never fails an entry on its own side; botocore's Stubber does.
    sqs = moto_client("sqs")
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/requests"
    blocker, first, second = (
        {"MessageId": name, "ReceiptHandle": f"handle-{name}"}
        for name in ("blocker", "first", "second")
    )
    failed_once = {"Id": "1", "SenderFault": False, "Code": "InternalError"}
    calls = DeleteCalls(sqs)
    calls.let_first_go.clear()
    finished: list[str] = []
    with Stubber(sqs) as stubber:
        for entries, failed in (
            ([blocker], []),
            ([first, second], [failed_once]),
            ([second], []),
        ):
            stubber.add_response(
                "delete_message_batch",
                {"Successful": [], "Failed": failed},
                {"QueueUrl": url, "Entries": entries_for(*entries)},
            )
        deletions = Deletions(sqs, url, AwsCaller(), within_seconds=5)
        deletions.delete(blocker)
        assert calls.first_started.wait(5)
        deletions.delete(first, after=lambda: finished.append("first"))
        deletions.delete(second, after=lambda: finished.append("second"))
        calls.let_first_go.set()
        assert deletions.close(5)

        stubber.assert_no_pending_responses()
    assert calls.sizes == [1, 2, 1]
    assert finished == ["first", "second"]


def entries_for(*messages: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
        for index, message in enumerate(messages)
    ]
