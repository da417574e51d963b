"""An idle lab stops at once: it wakes its own long polls, and leaves no wake behind."""

from __future__ import annotations

import json
import time
import urllib.parse
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


def a_lab(local_cloud: Any, lab_log: Any, sqs: Any = None, **options: Any) -> Lab:
    settings = deploy(local_cloud, "echo.echo")
    return Lab(
        sqs or local_cloud.clients.client("sqs"),
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


def test_the_labs_policy_allows_every_call_it_makes_on_the_request_queue(
    local_cloud, lab_log
):
    sqs = local_cloud.clients.client("sqs")
    calls = set()

    def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if params.get("QueueUrl") == local_cloud.queues.request_queue_url:
            calls.add(model.name)

    sqs.meta.events.register("before-parameter-build.sqs", record)
    lab = a_lab(local_cloud, lab_log, sqs).start()
    try:
        name = next(iter(lab.pools))
        result = local_cloud.lambda_service.invoke(name, b'{"id": "policy"}')
        assert result.function_error is None, result.payload
        time.sleep(1.5)  # the receivers are back in their long polls
    finally:
        lab.stop(grace_seconds=30)

    # Batch calls need the permission of their single call.
    needed = {"sqs:" + call.removesuffix("Batch") for call in calls}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"} <= needed
    assert needed <= lab_policy_actions_on(
        local_cloud, local_cloud.stack.request_queue_arn
    )


def lab_policy_actions_on(local_cloud: Any, resource_arn: str) -> set[str]:
    """The actions the stack's LabPolicy allows on one resource."""
    iam = local_cloud.clients.client("iam")
    policy_arn = local_cloud.stack.lab_policy_arn
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)[
        "PolicyVersion"
    ]["Document"]
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    allowed: set[str] = set()
    for statement in document["Statement"]:
        resources = statement["Resource"]
        if resource_arn in ([resources] if isinstance(resources, str) else resources):
            actions = statement["Action"]
            allowed |= {actions} if isinstance(actions, str) else set(actions)
    return allowed
