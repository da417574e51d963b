"""With no lab listening: events that can wait wait, callers that cannot get an answer.

Against moto's server with the local cloud: the proxy reads the heartbeat
that labs started here publish, so each test stops its labs before it ends
and waits for the lab to be offline before it counts on it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from offline_support import (
    Executions,
    Labs,
    deploy,
    invoke,
    invoke_in_background,
    presence_of,
    settings,
    wait_for_presence,
    wait_until,
    waiting_requests,
)

from bridge.cli import main
from lambda_proxy.presence import (
    HEARTBEAT_KEY,
    OFFLINE_AFTER_SECONDS,
    OFFLINE_CACHE_SECONDS,
    ONLINE_CACHE_SECONDS,
    RESTART_GRACE_SECONDS,
    Presence,
)

EVENTS = Path(__file__).parents[1] / "events"
# The proxy answers a caller at once; a generous bound on a shared 2-core
# machine, far below the functions' timeouts.
FAST_ANSWER_SECONDS = 1.0


@pytest.fixture
def executions(tmp_path: Path) -> Executions:
    return Executions(tmp_path)


@pytest.fixture
def labs(local_cloud) -> Iterator[Labs]:
    started = Labs(local_cloud)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def offline(local_cloud, labs) -> None:
    """No lab serves the stack when the test starts."""
    wait_for_presence(local_cloud, Presence.OFFLINE)


def _error(result) -> dict:
    assert result.function_error == "Unhandled", result.payload
    return json.loads(result.payload)


# Events that can wait


def test_an_s3_event_with_no_lab_waits_and_runs_when_the_lab_starts(
    local_cloud, labs, executions, offline
):
    name = deploy(local_cloud, executions, timeout_seconds=5)
    bucket = f"offline-{uuid.uuid4().hex[:12]}"
    local_cloud.clients.client("s3").create_bucket(Bucket=bucket)
    local_cloud.connect_bucket(bucket, name)
    before = waiting_requests(local_cloud)

    local_cloud.clients.client("s3").put_object(Bucket=bucket, Key="photo.jpg")
    wait_until(
        lambda: waiting_requests(local_cloud) > before, 15, "the request to be queued"
    )
    time.sleep(1.5)  # what a late lab would see, and long enough to be "late"
    assert executions.lines() == []

    labs.start([settings(name)])
    executions.wait_for("photo.jpg", "lab")

    assert executions.where("photo.jpg") == ["lab"]
    late = [note for note in labs.log.notes if name in note and " late" in note]
    assert len(late) == 1 and "(async) runs" in late[0], labs.log.notes


def test_waiting_requests_run_oldest_first(local_cloud, labs, executions, offline):
    name = deploy(local_cloud, executions, mode="async")
    for event_id in ("first", "second", "third"):
        result, _ = invoke(local_cloud, name, {"id": event_id})
        # Lambda answers an asynchronous invocation with no payload.
        assert (result.function_error, result.payload) == (None, b"null")

    labs.start([settings(name, concurrency=1)])
    executions.wait_for("third", "lab")

    assert [line[0] for line in executions.lines()] == ["first", "second", "third"]


def test_a_request_older_than_the_maximum_event_age_is_dead_lettered_not_run(
    local_cloud, labs, executions, offline, caplog
):
    name = deploy(local_cloud, executions, mode="async")
    invoke(local_cloud, name, {"id": "stale"})
    time.sleep(2.5)

    lab = labs.start([settings(name)], max_event_age_seconds=2)
    wait_until(lambda: lab.poller.stats().dead_lettered == 1, 15, "the dead letter")
    dead = _take_dead_letter(local_cloud, name)

    assert executions.lines() == []
    assert dead["event"] == {"id": "stale"} and dead["mode"] == "async"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("older than the maximum event age of 2.0 s" in m for m in logged)


def _take_dead_letter(local_cloud, function_name: str) -> dict:
    """Take this function's request off the dead-letter queue and return it."""
    sqs = local_cloud.clients.client("sqs")
    url = local_cloud.queues.dead_letter_queue_url
    for _ in range(10):
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            request = json.loads(message["Body"])
            if request.get("function", {}).get("name") == function_name:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return request
            sqs.change_message_visibility(
                QueueUrl=url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )
    raise AssertionError(f"no dead letter of {function_name}")


def test_a_sync_request_that_expired_in_the_queue_is_skipped(
    local_cloud, labs, executions, offline, caplog
):
    caplog.set_level(logging.WARNING, logger="bridge.dispatch")
    name = deploy(local_cloud, executions, mode="sync", timeout_seconds=2)

    result, _ = invoke(local_cloud, name, {"id": "expired"})
    error = _error(result)
    assert error["errorType"] == "Mless.LabTimeout"
    request_id = error["errorMessage"].split()[5]

    lab = labs.start([settings(name)])
    wait_until(lambda: lab.poller.stats().skipped_expired >= 1, 15, "the skip")

    assert executions.lines() == []
    skipped = [
        r.getMessage() for r in caplog.records if "Skipped request" in r.getMessage()
    ]
    assert any(request_id in line and "deadline passed" in line for line in skipped)


# Callers that need an answer


def test_a_sync_invoke_with_no_lab_fails_at_once_with_lab_offline(
    local_cloud, executions, offline
):
    name = deploy(local_cloud, executions, timeout_seconds=10)
    invoke(local_cloud, name, {"id": "cold"})  # the proxy's first start

    result, seconds = invoke(local_cloud, name, {"id": "warm"})

    error = _error(result)
    assert seconds < FAST_ANSWER_SECONDS, seconds
    assert error["errorType"] == "Mless.LabOffline"
    assert error["errorMessage"].startswith("The lab is offline (")
    assert "mless run" in error["errorMessage"]
    assert executions.lines() == []


@pytest.mark.parametrize(
    "event",
    [
        json.loads((EVENTS / "api-gateway-http-payment.json").read_text()),
        {"resource": "/", "path": "/", "httpMethod": "GET", "requestContext": {}},
    ],
    ids=["http-api", "rest-api"],
)
def test_an_api_gateway_event_with_no_lab_gets_a_503(
    local_cloud, executions, offline, event
):
    name = deploy(local_cloud, executions, timeout_seconds=10)

    result, seconds = invoke(local_cloud, name, event)

    assert result.function_error is None, result.payload
    response = json.loads(result.payload)
    assert response["statusCode"] == 503
    assert response["headers"] == {"Content-Type": "application/json"}
    assert json.loads(response["body"])["message"].startswith("The lab is offline")
    assert seconds < 2 * FAST_ANSWER_SECONDS + 1  # a cold start included


# Presence


def test_a_lab_stopped_and_started_again_is_seen_both_ways(
    local_cloud, labs, executions, offline
):
    name = deploy(local_cloud, executions, timeout_seconds=5)
    lab = labs.start([settings(name)])
    assert presence_of(local_cloud) is Presence.ONLINE
    served, _ = invoke(local_cloud, name, {"id": "served"})

    labs.stop(lab)
    assert presence_of(local_cloud) is Presence.OFFLINE
    time.sleep(ONLINE_CACHE_SECONDS + 0.2)  # what the proxy read expires
    refused, refused_in = invoke(local_cloud, name, {"id": "refused"})

    labs.start([settings(name)])
    assert presence_of(local_cloud) is Presence.ONLINE
    time.sleep(OFFLINE_CACHE_SECONDS + 0.2)
    again, _ = invoke(local_cloud, name, {"id": "again"})

    assert json.loads(served.payload) == {"id": "served", "where": "lab"}
    assert _error(refused)["errorType"] == "Mless.LabOffline"
    assert refused_in < FAST_ANSWER_SECONDS
    assert json.loads(again.payload) == {"id": "again", "where": "lab"}


def test_a_caller_waiting_when_the_lab_stops_learns_it_before_its_timeout(
    local_cloud, labs, executions, offline
):
    name = deploy(local_cloud, executions, timeout_seconds=40)
    lab = labs.start([settings(name, concurrency=1)])
    running = invoke_in_background(local_cloud, name, {"id": "running", "sleep": 3})
    executions.wait_for("running", "lab")
    # No free execution environment: the lab holds it without starting it.
    waiting = invoke_in_background(local_cloud, name, {"id": "waiting"})
    wait_until(lambda: lab.poller.stats().received == 2, 10, "the second request")

    labs.stop(lab)
    result, seconds = waiting(40)

    error = _error(result)
    assert error["errorType"] == "Mless.LabOffline"
    assert error["errorMessage"].startswith("The lab went offline (it stopped")
    # It waits RESTART_GRACE_SECONDS for a restarted lab, then up to a slice
    # of its wait and a cached heartbeat more; the function's timeout is 40 s.
    assert RESTART_GRACE_SECONDS < seconds < RESTART_GRACE_SECONDS + 10, seconds
    assert json.loads(running(20)[0].payload) == {"id": "running", "where": "lab"}
    assert executions.where("waiting") == []


def test_a_lab_that_died_without_stopping_is_offline_once_its_heartbeat_is_stale(
    local_cloud, offline
):
    # What a lab killed right after a beat leaves behind.
    beat = {"v": 1, "state": "serving", "lab": "gone:1", "functions": [], "at_ms": 0}
    local_cloud.clients.client("s3").put_object(
        Bucket=local_cloud.stack.payload_bucket_name,
        Key=HEARTBEAT_KEY,
        Body=json.dumps(beat).encode(),
    )
    died_at = time.monotonic()
    assert presence_of(local_cloud) is Presence.ONLINE

    wait_for_presence(local_cloud, Presence.OFFLINE)

    # LastModified counts whole seconds: up to one more.
    assert time.monotonic() - died_at < OFFLINE_AFTER_SECONDS + 2


# mless status


def test_status_shows_the_lab_its_functions_and_the_requests_waiting(
    local_cloud, labs, executions, offline, monkeypatch, tmp_path
):
    monkeypatch.setenv("MLESS_ENDPOINT_URL", local_cloud.endpoint_url)
    monkeypatch.setenv("MLESS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    stack = ["--stack", local_cloud.stack.stack_name]
    name = deploy(local_cloud, executions, mode="async")
    invoke(local_cloud, name, {"id": "waiting"})

    away = CliRunner().invoke(main, ["status", *stack])
    away_json = CliRunner().invoke(main, ["status", *stack, "--json"])
    labs.start([settings(name)])
    executions.wait_for("waiting", "lab")
    here = CliRunner().invoke(main, ["status", *stack, "--json"])

    assert away.exit_code == 0, away.output
    assert "  lab: not listening: " in away.stdout
    assert "(mode auto)" in away.stdout
    report = json.loads(away_json.stdout)
    assert (report["lab_listening"], report["proxy_mode"]) == (False, "auto")
    assert report["requests_waiting"] >= 1
    report = json.loads(here.stdout)
    assert report["lab_listening"] is True
    assert name in report["lab_functions"]
