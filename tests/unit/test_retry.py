"""AWS calls are retried while they fail transiently; AWS out of reach is said once."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bridge.retry import AwsCaller, Reachability, is_transient


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "no"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "ReceiveMessage",
    )


@pytest.mark.parametrize(
    "exc",
    [
        client_error("ThrottlingException"),
        client_error("RequestThrottled", 403),
        client_error("SlowDown", 503),
        client_error("AnythingAtAll", 500),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_throttling_5xx_and_lost_connections_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        client_error("AccessDenied", 403),
        client_error("AWS.SimpleQueueService.NonExistentQueue"),
        ValueError("a bug"),
    ],
)
def test_other_failures_are_not_transient(exc):
    assert not is_transient(exc)


class Flaky:
    """Fails with the given errors, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"params": params}


def fast_caller(reachability: Reachability | None = None) -> AwsCaller:
    return AwsCaller(
        reachability, first_backoff_seconds=0.001, max_backoff_seconds=0.01
    )


def test_a_call_is_retried_until_it_succeeds():
    operation = Flaky(client_error("ThrottlingException"), client_error("X", 503))

    assert fast_caller().call(operation, QueueUrl="q") == {"params": {"QueueUrl": "q"}}
    assert operation.calls == 3


def test_a_call_that_is_not_transient_fails_at_once():
    operation = Flaky(client_error("AccessDenied", 403))

    with pytest.raises(ClientError, match="AccessDenied"):
        fast_caller().call(operation)
    assert operation.calls == 1


def test_retries_end_when_the_time_given_is_up():
    operation = Flaky(*[client_error("ThrottlingException")] * 10_000)

    with pytest.raises(ClientError, match="ThrottlingException"):
        fast_caller().call(operation, within_seconds=0.2)
    assert 2 < operation.calls < 10_000


def test_retries_end_when_cancelled():
    operation = Flaky(*[client_error("ThrottlingException")] * 10_000)
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(ClientError):
        fast_caller().call(operation, cancel=cancel)
    assert operation.calls == 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_aws_out_of_reach_is_said_once_and_its_return_once(caplog):
    clock = Clock()
    reachability = Reachability(warn_after_seconds=30, clock=clock)
    lost = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    caplog.set_level(logging.WARNING, logger="bridge.retry")

    for _ in range(5):
        clock.now += 10
        reachability.failed(lost)
    reachability.answered()
    reachability.answered()

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("AWS has not answered the lab for 30 s")
    assert "127.0.0.1:1" in lines[0]
    assert lines[1].startswith("AWS answers again after 50 s")


def test_an_error_answer_counts_as_aws_answering(caplog):
    clock = Clock()
    reachability = Reachability(warn_after_seconds=1, clock=clock)
    caplog.set_level(logging.WARNING, logger="bridge.retry")
    clock.now += 5

    with pytest.raises(ClientError):
        fast_caller(reachability).call(Flaky(client_error("AccessDenied", 403)))

    assert not reachability.unreachable
    assert caplog.records == []
