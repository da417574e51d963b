"""Catching up on requests that waited for the lab; its heartbeat; library mode."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from bridge.catch_up import CatchUp, max_event_age_from, oldest_first
from bridge.clock import now_ms
from bridge.errors import ConfigurationError
from bridge.heartbeat import LabHeartbeat
from lambda_proxy.library import forward_to_lab
from lambda_proxy.presence import HEARTBEAT_KEY


def _request(mode: str, reply_to: str | None) -> dict[str, Any]:
    return {
        "request_id": "req-1",
        "mode": mode,
        "reply_to": reply_to,
        "function": {"name": "thumbnails", "timeout_ms": 3000},
    }


ASYNC = _request("async", None)
SYNC = _request("sync", "https://sqs/123/mless-reply-ab")


# Catching up


def test_an_async_request_older_than_the_maximum_age_must_not_run():
    catch_up = CatchUp(max_event_age_seconds=60)

    why = catch_up.too_old(ASYNC, now_ms() - 61_000)

    assert why == (
        "request req-1 of thumbnails is 1 min 1 s old, older than the maximum "
        "event age of 1 min 0 s"
    )
    assert catch_up.too_old(ASYNC, now_ms() - 59_000) is None


def test_the_age_of_a_request_a_caller_waits_for_is_its_deadlines_business():
    assert CatchUp(max_event_age_seconds=60).too_old(SYNC, now_ms() - 61_000) is None


def test_an_async_request_runs_with_its_timeout_from_when_it_starts():
    shown: list[str] = []
    catch_up = CatchUp(max_event_age_seconds=60, notify=shown.append)
    long_gone = now_ms() - 30_000

    deadline = catch_up.deadline_ms(ASYNC, long_gone + 3000, long_gone)

    assert abs(deadline - (now_ms() + 3000)) < 500
    assert shown == ["thumbnails: request req-1 (async) runs 30.0 s late"]


def test_a_request_that_did_not_wait_is_not_called_late():
    shown: list[str] = []
    catch_up = CatchUp(max_event_age_seconds=60, notify=shown.append)

    catch_up.deadline_ms(ASYNC, now_ms() + 3000, now_ms() - 50)

    assert shown == []


def test_a_sync_request_keeps_its_callers_deadline():
    deadline = now_ms() + 1234

    assert CatchUp().deadline_ms(SYNC, deadline, now_ms() - 30_000) == deadline


def test_messages_start_in_the_order_sqs_received_them():
    messages = [
        {"MessageId": "b", "Attributes": {"SentTimestamp": "2000"}},
        {"MessageId": "none"},
        {"MessageId": "a", "Attributes": {"SentTimestamp": "1000"}},
    ]

    assert [m["MessageId"] for m in oldest_first(messages)] == ["a", "b", "none"]


def test_the_maximum_age_is_lambdas_unless_the_variable_sets_one():
    assert max_event_age_from({}) == 21600
    assert max_event_age_from({"MLESS_MAX_EVENT_AGE_SECONDS": "90"}) == 90


@pytest.mark.parametrize("value", ["six hours", "0", "-5"])
def test_a_bad_maximum_age_is_a_configuration_error(value, monkeypatch):
    monkeypatch.setenv("MLESS_MAX_EVENT_AGE_SECONDS", value)

    with pytest.raises(ConfigurationError, match="seconds"):
        CatchUp()


# The heartbeat


class Bucket:
    """Keeps what PutObject writes; fails while told to."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.failing = False
        self.written = threading.Event()

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        assert (Bucket, Key, ContentType) == (
            "payloads",
            HEARTBEAT_KEY,
            "application/json",
        )
        if self.failing:
            raise ConnectionError("no network")
        body = json.loads(Body)
        assert body["functions"] == ["a", "b"]
        self.states.append(body["state"])
        self.written.set()


def test_the_heartbeat_says_serving_at_start_and_stopped_at_stop():
    bucket = Bucket()
    heartbeat = LabHeartbeat(bucket, "payloads", ["b", "a"], beat_seconds=0.05)

    heartbeat.start()
    first = list(bucket.states)
    threading.Event().wait(0.3)
    heartbeat.stop()

    assert first == ["serving"]
    assert bucket.states.count("serving") >= 3
    assert bucket.states[-1] == "stopped"
    assert heartbeat.beats == len(bucket.states)


def test_a_heartbeat_that_cannot_be_written_does_not_stop_the_lab():
    bucket = Bucket()
    bucket.failing = True
    heartbeat = LabHeartbeat(bucket, "payloads", ["a", "b"], beat_seconds=0.05)

    heartbeat.start()
    bucket.failing = False
    assert bucket.written.wait(2)
    heartbeat.stop()
    heartbeat.stop()

    assert bucket.states[-1] == "stopped"
    assert bucket.states.count("stopped") == 1


# Library mode where mless is not set up


def test_without_mless_set_up_the_wrapped_handler_runs_directly(monkeypatch):
    monkeypatch.delenv("MLESS_REQUEST_QUEUE_URL", raising=False)

    @forward_to_lab()
    def handler(event: Any, context: Any) -> Any:
        """Doubles."""
        return event * 2

    assert handler(21, None) == 42
    assert handler.__doc__ == "Doubles."


def test_an_unknown_mode_is_refused_when_the_handler_is_wrapped():
    with pytest.raises(ValueError, match="MLESS_MODE"):
        forward_to_lab(mode="later")
