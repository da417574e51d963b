"""The lab's presence as the proxy reads it, and the route each invocation takes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError

from lambda_proxy.event_sources import (
    EventSource,
    event_source,
    http_response,
    is_asynchronous,
)
from lambda_proxy.presence import (
    GIVE_UP_SILENCE_SECONDS,
    HEARTBEAT_KEY,
    OFFLINE_AFTER_SECONDS,
    RESTART_GRACE_SECONDS,
    LabPresence,
    Mode,
    Presence,
    Route,
    Sighting,
    choose_route,
    judge,
    offline_message,
)

NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class HeartbeatBucket:
    """Answers GetObject for the heartbeat as S3 would, counting the reads."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.written_at = NOW
        self.error: Exception | None = None
        self.reads = 0

    def beat(self, state: str, written_at: float) -> None:
        self.body = json.dumps(
            {"v": 1, "state": state, "lab": "host:1", "functions": ["f"], "at_ms": 0}
        ).encode()
        self.written_at = written_at

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        assert (Bucket, Key) == ("payloads", HEARTBEAT_KEY)
        self.reads += 1
        if self.error is not None:
            raise self.error
        if self.body is None:
            raise _client_error("NoSuchKey")
        # S3's LastModified counts whole seconds.
        written = datetime.fromtimestamp(int(self.written_at), UTC)
        return {"Body": io.BytesIO(self.body), "LastModified": written}


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "GetObject")


def _presence(bucket: HeartbeatBucket, clock: Clock) -> LabPresence:
    return LabPresence("payloads", bucket, clock=clock)


# Reading the heartbeat


def test_a_fresh_serving_heartbeat_means_online():
    bucket, clock = HeartbeatBucket(), Clock()
    bucket.beat("serving", NOW - 1)

    sighting = _presence(bucket, clock).sighting()

    assert sighting.presence is Presence.ONLINE
    assert sighting.functions == ("f",)


def test_a_heartbeat_older_than_the_limit_means_offline():
    bucket, clock = HeartbeatBucket(), Clock()
    bucket.beat("serving", NOW - OFFLINE_AFTER_SECONDS - 1.5)

    sighting = _presence(bucket, clock).sighting()

    assert sighting.presence is Presence.OFFLINE
    assert "last heard from 8 s ago" in sighting.detail


def test_a_stopped_lab_is_offline_at_once():
    bucket, clock = HeartbeatBucket(), Clock()
    bucket.beat("stopped", NOW)

    sighting = _presence(bucket, clock).sighting()

    assert sighting.presence is Presence.OFFLINE
    assert "stopped" in sighting.detail


def test_no_heartbeat_at_all_means_no_lab_ever_served():
    sighting = _presence(HeartbeatBucket(), Clock()).sighting()

    assert sighting.presence is Presence.OFFLINE
    assert "no lab has served" in sighting.detail
    assert sighting.gone()


@pytest.mark.parametrize(
    "error",
    [_client_error("AccessDenied"), ConnectTimeoutError(endpoint_url="https://s3")],
)
def test_a_heartbeat_that_cannot_be_read_leaves_the_presence_unknown(error):
    bucket = HeartbeatBucket()
    bucket.error = error

    sighting = _presence(bucket, Clock()).sighting()

    assert sighting.presence is Presence.UNKNOWN
    assert "could not be read" in sighting.detail


def test_without_a_payload_bucket_the_presence_is_unknown():
    assert LabPresence(None).sighting().presence is Presence.UNKNOWN


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"v": 1}'])
def test_an_unreadable_heartbeat_leaves_the_presence_unknown(body):
    assert judge(body, NOW, NOW).presence is Presence.UNKNOWN


def test_an_online_lab_is_trusted_for_two_seconds():
    bucket, clock = HeartbeatBucket(), Clock()
    bucket.beat("serving", NOW)
    presence = _presence(bucket, clock)

    presence.sighting()
    bucket.beat("stopped", NOW + 1)
    clock.now += 1.9
    cached = presence.sighting()
    clock.now += 0.2
    fresh = presence.sighting()

    assert (cached.presence, fresh.presence) == (Presence.ONLINE, Presence.OFFLINE)
    assert bucket.reads == 2


def test_a_reply_counts_as_seeing_the_lab_online():
    bucket, clock = HeartbeatBucket(), Clock()
    bucket.beat("serving", NOW)
    presence = _presence(bucket, clock)

    presence.sighting()
    for _ in range(5):  # an invocation every 1.5 s, each answered
        clock.now += 1.5
        presence.answered()
        seen = presence.sighting()

    assert seen.presence is Presence.ONLINE
    assert seen.functions == ("f",)
    assert bucket.reads == 1
    # Without a reply, what was seen grows old as before.
    bucket.beat("stopped", clock.now)
    clock.now += 2.1
    assert presence.sighting().presence is Presence.OFFLINE
    assert bucket.reads == 2


def test_a_lab_seen_offline_is_looked_for_again_after_a_second():
    bucket, clock = HeartbeatBucket(), Clock()
    bucket.beat("stopped", NOW)
    presence = _presence(bucket, clock)

    presence.sighting()
    bucket.beat("serving", NOW + 0.5)
    clock.now += 0.9
    cached = presence.sighting()
    clock.now += 0.2
    fresh = presence.sighting()

    assert (cached.presence, fresh.presence) == (Presence.OFFLINE, Presence.ONLINE)


@pytest.mark.parametrize(
    ("state", "age", "gone"),
    [
        ("serving", 1, False),
        ("serving", OFFLINE_AFTER_SECONDS + 2, False),
        ("serving", GIVE_UP_SILENCE_SECONDS + 2, True),
        ("stopped", 1, False),
        ("stopped", RESTART_GRACE_SECONDS + 2, True),
    ],
)
def test_a_waiting_caller_gives_a_stopped_lab_time_to_restart_a_silent_one_more(
    state, age, gone
):
    bucket = HeartbeatBucket()
    bucket.beat(state, NOW - age)

    assert _presence(bucket, Clock()).sighting().gone() is gone


# Modes


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        (None, Mode.AUTO),
        ("", Mode.AUTO),
        ("Sync", Mode.SYNC),
        (" mirror ", Mode.MIRROR),
    ],
)
def test_a_mode_is_named_in_any_case_and_defaults_to_auto(name, mode):
    assert Mode.named(name) is mode


def test_an_unknown_mode_is_refused_with_the_modes_there_are():
    with pytest.raises(ValueError, match="sync, async, mirror, auto"):
        Mode.named("eventually")


# Routes

ONLINE = Sighting(Presence.ONLINE, "heard from 1 s ago")
OFFLINE = Sighting(Presence.OFFLINE, "it stopped 3 s ago")
UNKNOWN = Sighting(Presence.UNKNOWN, "its heartbeat could not be read")

S3 = EventSource.S3
DIRECT = EventSource.DIRECT
HTTP = EventSource.API_GATEWAY_HTTP


@pytest.mark.parametrize(
    ("mode", "sighting", "source", "route"),
    [
        (Mode.SYNC, OFFLINE, DIRECT, Route.WAIT),
        (Mode.ASYNC, ONLINE, DIRECT, Route.QUEUE),
        (Mode.MIRROR, ONLINE, HTTP, Route.MIRROR),
        (Mode.MIRROR, UNKNOWN, HTTP, Route.MIRROR),
        (Mode.MIRROR, OFFLINE, HTTP, Route.IN_PLACE),
        (Mode.AUTO, ONLINE, S3, Route.WAIT),
        (Mode.AUTO, UNKNOWN, DIRECT, Route.WAIT),
        (Mode.AUTO, OFFLINE, S3, Route.QUEUE),
        (Mode.AUTO, OFFLINE, EventSource.SNS, Route.QUEUE),
        (Mode.AUTO, OFFLINE, EventSource.EVENTBRIDGE, Route.QUEUE),
        (Mode.AUTO, OFFLINE, DIRECT, Route.REFUSE),
        (Mode.AUTO, OFFLINE, HTTP, Route.REFUSE),
        (Mode.AUTO, OFFLINE, EventSource.SQS, Route.REFUSE),
    ],
)
def test_the_route_follows_the_mode_the_presence_and_the_source(
    mode, sighting, source, route
):
    assert choose_route(mode, lambda: sighting, source) is route


@pytest.mark.parametrize("source", [S3, DIRECT, HTTP])
def test_library_mode_runs_in_place_wherever_the_proxy_would_not_wait(source):
    assert choose_route(Mode.AUTO, lambda: OFFLINE, source, library=True) is (
        Route.IN_PLACE
    )
    assert choose_route(Mode.AUTO, lambda: ONLINE, source, library=True) is (Route.WAIT)


@pytest.mark.parametrize("mode", [Mode.SYNC, Mode.ASYNC])
def test_sync_and_async_modes_never_read_the_heartbeat(mode):
    def unread() -> Sighting:
        raise AssertionError("the heartbeat was read")

    choose_route(mode, unread, DIRECT)


def test_the_offline_message_says_why_and_what_to_do():
    message = offline_message(OFFLINE, "req-1")

    assert message.startswith("The lab is offline (it stopped 3 s ago)")
    assert "req-1" in message and "mless run" in message and "async" in message


# Event sources: who waits for an answer, and what an HTTP caller gets


def _ses(invocation_type: str) -> dict[str, Any]:
    action = {"type": "Lambda", "invocationType": invocation_type}
    return {
        "Records": [{"eventSource": "aws:ses", "ses": {"receipt": {"action": action}}}]
    }


@pytest.mark.parametrize(
    ("event", "asynchronous"),
    [
        ({"Records": [{"eventSource": "aws:s3"}]}, True),
        ({"Records": [{"EventSource": "aws:sns"}]}, True),
        ({"source": "aws.s3", "detail-type": "Object Created"}, True),
        ({"awslogs": {"data": "H4sI"}}, True),
        (_ses("Event"), True),
        (_ses("RequestResponse"), False),
        ({"Records": [{"eventSource": "aws:sqs"}]}, False),
        ({"Records": [{"eventSource": "aws:kinesis"}]}, False),
        ({"httpMethod": "GET", "requestContext": {}}, False),
        ({"order": 7}, False),
    ],
)
def test_only_sources_that_never_wait_count_as_asynchronous(event, asynchronous):
    assert is_asynchronous(event_source(event), event) is asynchronous


def test_an_api_gateway_caller_gets_a_json_503():
    response = http_response(HTTP, 503, "The lab is offline")

    assert response == {
        "statusCode": 503,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": "The lab is offline"}),
    }


def test_a_load_balancer_gets_its_status_description_and_multi_value_headers():
    event = {"multiValueHeaders": {"accept": ["*/*"]}}

    response = http_response(EventSource.LOAD_BALANCER, 503, "offline", event)

    assert response["statusDescription"] == "503 Service Unavailable"
    assert response["multiValueHeaders"] == {"Content-Type": ["application/json"]}
    assert response["isBase64Encoded"] is False
