"""Delivery and faults: nothing lost, nothing run twice, a poller that keeps serving.

Each test serves the local cloud's request queue with a lab of its own and
counts executions through the `reliability.record` handler, which notes
every start by the event's id in a file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from lab_process import LabProcess, kill_leftover_environments, lab_config
from reliability_support import (
    Executions,
    Faults,
    Relay,
    a_request,
    create_reply_queue,
    deploy,
    invoke_in_background,
    messages_in,
    read_envelopes,
    replies,
    wait_until,
)

from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.retry import Reachability

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def executions(tmp_path) -> Executions:
    return Executions(tmp_path)


@pytest.fixture
def serve(local_cloud, lab_log) -> Iterator[Callable[..., Lab]]:
    """Start a lab serving the given functions; it stops when the test ends."""
    labs: list[Lab] = []

    def start(functions: list[FunctionSettings], **options: Any) -> Lab:
        options.setdefault("sqs", local_cloud.clients.client("sqs"))
        options.setdefault("poll_wait_seconds", 1)
        sqs = options.pop("sqs")
        lab = Lab(
            sqs,
            local_cloud.queues,
            functions,
            lab_log,
            endpoint_url=local_cloud.endpoint_url,
            **options,
        )
        labs.append(lab.start())
        return lab

    yield start
    for lab in labs:
        lab.stop(grace_seconds=5)
        lab.poller.join(timeout=5)


@pytest.fixture
def sqs(local_cloud) -> Any:
    return local_cloud.clients.client("sqs")


def own_client(endpoint_url: str, service: str, **config: Any) -> Any:
    """A client of the test's own, so faults injected on it touch nothing else."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(**config),
        **CREDENTIALS,
    )


def request_queue_settles_empty(sqs: Any, local_cloud: Any) -> None:
    wait_until(
        lambda: messages_in(sqs, local_cloud.queues.request_queue_url) == 0,
        10,
        "the request queue emptying",
    )


# Delivery


def test_a_handler_running_past_the_visibility_timeout_runs_once(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=12,
        environment=executions.environment,
    )
    # Two seconds of visibility against a handler of five: were it not
    # extended, the message would be delivered again twice meanwhile.
    lab = serve([settings], visibility_timeout_seconds=2)

    result = local_cloud.lambda_service.invoke(
        settings.name, json.dumps({"id": "long", "sleep": 5}).encode()
    )

    assert result.function_error is None, result.payload
    assert json.loads(result.payload)["id"] == "long"
    assert len(executions.starts("long")) == 1
    stats = lab.poller.stats()
    assert stats.received == 1, stats
    assert stats.held_copies == stats.dropped_copies == 0
    request_queue_settles_empty(sqs, local_cloud)


def test_a_request_delivered_twice_at_once_runs_once(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    lab = serve([settings])
    reply_queue = create_reply_queue(sqs, local_cloud.queues.reply_queue_prefix)
    request = a_request(
        settings,
        {"id": "twin", "sleep": 1.5},
        reply_to=reply_queue,
        environment=executions.environment,
    )
    body = json.dumps(request)

    for _ in range(2):
        sqs.send_message(
            QueueUrl=local_cloud.queues.request_queue_url, MessageBody=body
        )
    envelopes = read_envelopes(sqs, reply_queue, lambda e: len(replies(e)) >= 1)
    time.sleep(2)  # time for a second reply, were one coming
    envelopes += read_envelopes(sqs, reply_queue, lambda e: True, timeout=1)

    assert [r["correlation_id"] for r in replies(envelopes)] == [
        request["correlation_id"]
    ]
    assert json.loads(replies(envelopes)[0]["payload"])["id"] == "twin"
    assert len(executions.starts("twin")) == 1
    stats = lab.poller.stats()
    assert (stats.ran, stats.held_copies) == (1, 1), stats
    request_queue_settles_empty(sqs, local_cloud)


def test_a_copy_arriving_after_the_request_ran_gets_the_same_reply(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    lab = serve([settings])
    reply_queue = create_reply_queue(sqs, local_cloud.queues.reply_queue_prefix)
    request = a_request(
        settings,
        {"id": "echoed"},
        reply_to=reply_queue,
        environment=executions.environment,
    )
    send = {
        "QueueUrl": local_cloud.queues.request_queue_url,
        "MessageBody": json.dumps(request),
    }

    sqs.send_message(**send)
    first = replies(read_envelopes(sqs, reply_queue, lambda e: bool(replies(e))))
    sqs.send_message(**send)
    second = replies(read_envelopes(sqs, reply_queue, lambda e: bool(replies(e))))

    assert len(first) == len(second) == 1
    assert second[0] == first[0]
    assert len(executions.starts("echoed")) == 1
    assert lab.poller.stats().resent_replies == 1
    request_queue_settles_empty(sqs, local_cloud)


def test_a_copy_arriving_after_its_caller_gave_up_is_dropped(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    lab = serve([settings])
    reply_queue = create_reply_queue(sqs, local_cloud.queues.reply_queue_prefix)
    request = a_request(
        settings,
        {"id": "late"},
        reply_to=reply_queue,
        deadline_in_ms=2_000,
        environment=executions.environment,
    )
    send = {
        "QueueUrl": local_cloud.queues.request_queue_url,
        "MessageBody": json.dumps(request),
    }

    sqs.send_message(**send)
    assert replies(read_envelopes(sqs, reply_queue, lambda e: bool(replies(e))))
    wait_until(lambda: time.time() * 1000 > request["deadline_ms"], 5, "deadline")
    sqs.send_message(**send)
    wait_until(lambda: lab.poller.stats().dropped_copies == 1, 10, "the drop")

    assert replies(read_envelopes(sqs, reply_queue, lambda e: False, timeout=1)) == []
    assert len(executions.starts("late")) == 1
    request_queue_settles_empty(sqs, local_cloud)


def test_an_async_request_delivered_twice_runs_once(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    lab = serve([settings])
    request = a_request(
        settings,
        {"id": "async"},
        reply_to=None,
        mode="async",
        environment=executions.environment,
    )

    for _ in range(2):
        sqs.send_message(
            QueueUrl=local_cloud.queues.request_queue_url,
            MessageBody=json.dumps(request),
        )
    wait_until(lambda: lab.poller.stats().ran == 1, 10, "the run")
    request_queue_settles_empty(sqs, local_cloud)

    assert len(executions.starts("async")) == 1
    stats = lab.poller.stats()
    assert stats.held_copies + stats.dropped_copies == 1, stats


# Poison messages


def poison_bodies(settings: FunctionSettings, local_cloud: Any) -> dict[str, str]:
    """One body of each kind the lab must never run, with the reason it gives."""
    good = a_request(settings, {"id": "poison"}, reply_to=None)
    prefix = local_cloud.queues.reply_queue_prefix
    account = local_cloud.queues.request_queue_url.split("/")[-2]
    endpoint = local_cloud.endpoint_url

    def changed(**changes: Any) -> str:
        return json.dumps({**good, **changes})

    stored = {
        "v": 1,
        "kind": "stored",
        "body_of": "request",
        "correlation_id": good["correlation_id"],
        "request_id": good["request_id"],
        "bucket": "someone-elses-bucket",
        "key": f"{good['correlation_id']}/request",
        "size_bytes": 10,
    }
    return {
        "not JSON": "{this is not json",
        "not an object": "[1, 2, 3]",
        "format version 7": changed(v=7),
        "unknown message kind 'invoke'": changed(kind="invoke"),
        "the request lacks credentials": json.dumps(
            {k: v for k, v in good.items() if k != "credentials"}
        ),
        "deadline_ms is str": changed(deadline_ms="tomorrow"),
        "not a request but an ack": json.dumps(
            {"v": 1, "kind": "ack", "correlation_id": "c", "request_id": "r"}
        ),
        "is not one of this stack's": changed(
            reply_to=f"{endpoint}/{account}/someone-else-{uuid.uuid4().hex}"
        ),
        "is not one of this stack's ": changed(
            reply_to=f"{endpoint}/999999999999/{prefix}{uuid.uuid4().hex}"
        ),
        "not in the stack's payload bucket": json.dumps(stored),
    }


def drain_dead_letters(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    """Take every message from the dead-letter queue until `expected` are in."""
    taken: list[dict[str, Any]] = []
    give_up_at = time.monotonic() + 15
    while len(taken) < expected and time.monotonic() < give_up_at:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        )
        for message in response.get("Messages", []):
            taken.append(message)
            sqs.delete_message(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    return taken


def test_every_kind_of_poison_message_is_dead_lettered_once_and_never_run(
    local_cloud, serve, executions, sqs, caplog
):
    caplog.set_level(logging.INFO)
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    sqs.purge_queue(QueueUrl=local_cloud.queues.dead_letter_queue_url)
    lab = serve([settings])
    sent = {}

    for why, body in poison_bodies(settings, local_cloud).items():
        response = sqs.send_message(
            QueueUrl=local_cloud.queues.request_queue_url, MessageBody=body
        )
        sent[response["MessageId"]] = (why.strip(), body)
    wait_until(
        lambda: lab.poller.stats().dead_lettered == len(sent), 20, "dead-lettering"
    )

    taken = drain_dead_letters(sqs, local_cloud.queues.dead_letter_queue_url, len(sent))
    time.sleep(1)  # time for a second copy, were one coming
    taken += drain_dead_letters(sqs, local_cloud.queues.dead_letter_queue_url, 1)

    dead: dict[str, list[dict[str, Any]]] = {}
    for message in taken:
        original = message["MessageAttributes"]["MlessMessageId"]["StringValue"]
        dead.setdefault(original, []).append(message)
    assert sorted(dead) == sorted(sent)
    for message_id, (why, body) in sent.items():
        copies = dead[message_id]
        assert len(copies) == 1, (why, copies)
        assert copies[0]["Body"] == body
        reason = copies[0]["MessageAttributes"]["MlessReason"]["StringValue"]
        assert why in reason, (why, reason)
        logged = [r for r in caplog.records if message_id in r.getMessage()]
        assert len(logged) == 1, (why, [r.getMessage() for r in logged])
        assert logged[0].levelname == "ERROR"
        assert why in logged[0].getMessage()
    assert executions.lines() == []
    request_queue_settles_empty(sqs, local_cloud)


def test_the_poller_serves_on_after_poison_messages(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    lab = serve([settings])
    for body in poison_bodies(settings, local_cloud).values():
        sqs.send_message(
            QueueUrl=local_cloud.queues.request_queue_url, MessageBody=body
        )

    result = local_cloud.lambda_service.invoke(settings.name, b'{"id": "after"}')

    assert result.function_error is None, result.payload
    assert executions.start_counts() == {"after": 1}
    assert lab.poller.stats().dead_lettered >= 1


def test_a_poison_message_seen_twice_is_logged_and_dead_lettered_once(
    local_cloud, serve, sqs, caplog
):
    caplog.set_level(logging.INFO)
    settings = deploy(local_cloud, "reliability.record")
    lab_sqs = own_client(local_cloud.endpoint_url, "sqs")
    # The first delete is refused, so the message comes back after its
    # (one-second) visibility timeout and is received a second time.
    refuse_delete = Faults(lab_sqs, "AccessDenied", 403, {"DeleteMessageBatch"})
    refuse_delete.on = refuse_delete.once = True
    lab = serve([settings], sqs=lab_sqs, visibility_timeout_seconds=1)

    message_id = sqs.send_message(
        QueueUrl=local_cloud.queues.request_queue_url, MessageBody="not json at all"
    )["MessageId"]
    wait_until(lambda: lab.poller.stats().received >= 2, 15, "a second delivery")
    request_queue_settles_empty(sqs, local_cloud)

    assert refuse_delete.injected == 1
    logged = [r for r in caplog.records if message_id in r.getMessage()]
    assert [r.levelname for r in logged] == ["ERROR", "WARNING"], logged
    assert "Could not delete" in logged[1].getMessage()
    assert lab.poller.stats().dead_lettered == 1


# AWS faults


def test_throttled_sqs_and_s3_delay_an_invocation_but_lose_nothing(
    local_cloud, serve, executions, sqs, caplog
):
    caplog.set_level(logging.WARNING, logger="bridge.retry")
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=20,
        environment=executions.environment,
    )
    lab_sqs = own_client(local_cloud.endpoint_url, "sqs")
    lab_s3 = own_client(local_cloud.endpoint_url, "s3")
    sqs_throttled = Faults(lab_sqs, "RequestThrottled", 403)
    # Only reads: the lab's presence heartbeat, which it writes to S3 too,
    # must stay fresh, or the proxy would take the lab for gone.
    s3_throttled = Faults(lab_s3, "SlowDown", 503, {"GetObject"})
    reachability = Reachability(warn_after_seconds=2.0)
    serve([settings], sqs=lab_sqs, s3=lab_s3, reachability=reachability)
    time.sleep(1.5)  # the receivers are waiting on the queue
    sqs_throttled.on = s3_throttled.on = True
    # Over SQS's limit, so the lab must read the request from S3 too.
    event = {"id": "throttled", "blob": "x" * 1_200_000}
    invocation = invoke_in_background(local_cloud, settings.name, event)

    wait_until(
        lambda: (
            reachability.unreachable
            and messages_in(sqs, local_cloud.queues.request_queue_url) > 0
        ),
        15,
        "the request queued while the lab warns that AWS is out of reach",
    )
    sqs_throttled.on = False
    # The lab's next receive comes after a jittered backoff of up to a few
    # seconds; S3 stays throttled until the lab has met it at least once.
    wait_until(lambda: s3_throttled.injected > 0, 15, "a throttled read from S3")
    time.sleep(0.5)
    s3_throttled.on = False
    outcome = invocation.result(20)

    assert outcome.function_error is None, outcome.payload[:500]
    assert json.loads(outcome.payload)["id"] == "throttled"
    assert len(executions.starts("throttled")) == 1
    assert sqs_throttled.injected > 4 and s3_throttled.injected > 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("AWS has not answered the lab for ")
    assert "RequestThrottled" in warnings[0] or "SlowDown" in warnings[0]
    assert warnings[1].startswith("AWS answers again after")


def test_a_lab_started_without_network_warns_once_then_serves(
    local_cloud, lab_log, executions, caplog, moto_endpoint
):
    caplog.set_level(logging.WARNING, logger="bridge.retry")
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    relay = Relay(int(moto_endpoint.rsplit(":", 1)[1]))
    # botocore retries a refused connection itself, for seconds; one attempt
    # each keeps the test short. The poller's own retries are the subject.
    lab_sqs = own_client(
        relay.url,
        "sqs",
        retries={"max_attempts": 1},
        connect_timeout=1,
        read_timeout=5,
    )
    lab = Lab(
        lab_sqs,
        local_cloud.queues,
        [settings],
        lab_log,
        endpoint_url=local_cloud.endpoint_url,
        s3=local_cloud.clients.client("s3"),
        poll_wait_seconds=1,
        reachability=Reachability(warn_after_seconds=1.0),
    ).start()
    try:
        wait_until(lambda: lab.poller.reachability.unreachable, 10, "the warning")
        time.sleep(1)
        relay.up()
        result = local_cloud.lambda_service.invoke(settings.name, b'{"id": "net"}')
        request_queue_settles_empty(local_cloud.clients.client("sqs"), local_cloud)
    finally:
        # Stopped, and its last long polls done, while it can still reach
        # SQS: a poll cut by the relay going down could take a later test's
        # request with it.
        lab.stop(grace_seconds=5)
        assert lab.poller.join(timeout=10)
        relay.down()

    assert result.function_error is None, result.payload
    assert executions.start_counts() == {"net": 1}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert "Could not connect" in warnings[0]
    assert warnings[1].startswith("AWS answers again after")


def test_an_execution_environment_killed_mid_invocation_fails_only_that_one(
    local_cloud, serve, executions, sqs
):
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=10,
        environment=executions.environment,
    )
    serve([settings])
    invocation = invoke_in_background(
        local_cloud, settings.name, {"id": "victim", "sleep": 8}
    )
    pid = int(executions.wait_for_start("victim", invocation)[2])

    os.kill(pid, signal.SIGKILL)
    killed = invocation.result(15)
    after = local_cloud.lambda_service.invoke(settings.name, b'{"id": "after"}')

    error = json.loads(killed.payload)
    assert killed.function_error == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert after.function_error is None, after.payload
    assert json.loads(after.payload)["pid"] != pid
    assert executions.start_counts() == {"victim": 1, "after": 1}
    request_queue_settles_empty(sqs, local_cloud)


def test_a_poller_killed_mid_invocation_and_restarted_does_not_run_it_again(
    local_cloud, executions, sqs
):
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=2,
        environment=executions.environment,
    )
    function = {
        "name": settings.name,
        "handler": settings.handler,
        "code_dir": str(settings.code_dir),
        "concurrency": 2,
    }
    # The visibility timeout outlasts the function's timeout, as the stack's
    # does (both are the proxy's timeout): a message that comes back after
    # the lab died has passed its deadline.
    config = lab_config(local_cloud, [function], visibility_timeout_seconds=3)
    first = LabProcess(config)
    restarted = None
    try:
        invocation = invoke_in_background(
            local_cloud, settings.name, {"id": "orphan", "sleep": 1.5}
        )
        start = executions.wait_for_start("orphan", invocation)
        first.process.kill()
        first.wait(10)
        restarted = LabProcess(config)

        caller = invocation.result(15)
        skipped = restarted.wait_for(rf"Skipped request {start[3]}", timeout=15)
        after = local_cloud.lambda_service.invoke(settings.name, b'{"id": "after"}')
    finally:
        for lab in (first, restarted):
            if lab is not None:
                lab.close()
        kill_leftover_environments({int(line[2]) for line in executions.lines()})

    assert json.loads(caller.payload)["errorType"] in {
        "Sandbox.Timedout",
        "Mless.LabTimeout",
    }
    assert "deadline passed" in skipped
    assert len(executions.starts("orphan")) == 1
    assert after.function_error is None, after.payload
    assert executions.start_counts()["after"] == 1
    request_queue_settles_empty(sqs, local_cloud)
