"""An idle lab stops at once: it wakes its own long polls, and leaves no wake behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from reliability_support import deploy, messages_in, wait_until

from bridge.lab import Lab
from bridge.local_cloud import LocalCloud
from bridge.poller import POLL_WAIT_SECONDS
from bridge.wakes import WAKE_BODY


@pytest.fixture(scope="module")
def local_cloud(moto_endpoint: str) -> Iterator[LocalCloud]:
    """A stack of its own: others' tests leave messages hidden in the shared one."""
    cloud = LocalCloud(stack_name="mless-wakes", endpoint_url=moto_endpoint)
    try:
        yield cloud
    finally:
        cloud.close()


def a_lab(local_cloud: Any, lab_log: Any, **options: Any) -> Lab:
    settings = deploy(local_cloud, "reliability.record")
    return Lab(
        local_cloud.clients.client("sqs"),
        local_cloud.queues,
        [settings],
        lab_log,
        endpoint_url=local_cloud.endpoint_url,
        **options,
    )


def request_queue_is_empty(local_cloud: Any) -> bool:
    sqs = local_cloud.clients.client("sqs")
    return messages_in(sqs, local_cloud.queues.request_queue_url) == 0


def test_an_idle_lab_with_20_second_polls_stops_within_seconds(local_cloud, lab_log):
    assert POLL_WAIT_SECONDS == 20
    lab = a_lab(local_cloud, lab_log).start()
    time.sleep(1.5)  # every receiver is in a long poll

    started = time.monotonic()
    lab.stop(grace_seconds=30)
    stopped_after = time.monotonic() - started

    assert lab.poller.join(0)
    # Without wakes the stop waits for the polls to end: up to 20 s.
    assert stopped_after < 10, f"stopping took {stopped_after:.1f} s"
    wait_until(lambda: request_queue_is_empty(local_cloud), 5, "the wakes deleted")
    stats = lab.poller.stats()
    assert stats.received == stats.released == stats.dead_lettered == 0


def test_a_wake_left_in_the_queue_is_deleted_by_the_next_lab_unrun(
    local_cloud, lab_log
):
    sqs = local_cloud.clients.client("sqs")
    sqs.send_message(
        QueueUrl=local_cloud.queues.request_queue_url, MessageBody=WAKE_BODY
    )
    lab = a_lab(local_cloud, lab_log, poll_wait_seconds=1).start()
    try:
        wait_until(lambda: request_queue_is_empty(local_cloud), 10, "the wake deleted")
    finally:
        lab.stop(grace_seconds=5)

    stats = lab.poller.stats()
    assert stats.received == stats.ran == stats.dead_lettered == 0
