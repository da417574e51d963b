"""The poller's receivers: each may run one request itself, but one always polls.

A receiver that runs the request it received saves the invocation a hand-off
to a worker thread; if every receiver did, nobody would poll while their
handlers ran.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_support import Executions, deploy, invoke_in_background, wait_until

from bridge.lab import Lab
from lambda_proxy import wire


class ThreadsOfOutcomes:
    """The lab thread that finished each request, by the event's id."""

    def __init__(self) -> None:
        self.by_event: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, request: wire.Request, outcome: Any) -> None:
        with self._lock:
            self.by_event[request["event"]["id"]] = threading.current_thread().name


@pytest.fixture
def threads() -> ThreadsOfOutcomes:
    return ThreadsOfOutcomes()


@pytest.fixture
def lab_of_two_receivers(
    local_cloud: Any, lab_log: Any, executions: Executions, threads: ThreadsOfOutcomes
) -> Iterator[Any]:
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=30,
        environment=executions.environment,
    )
    lab = Lab(
        local_cloud.clients.client("sqs"),
        local_cloud.queues,
        [settings],
        lab_log,
        endpoint_url=local_cloud.endpoint_url,
        receivers=2,
        poll_wait_seconds=1,
        on_outcome=threads,
    ).start()
    yield settings
    lab.stop(grace_seconds=5)


@pytest.fixture
def executions(tmp_path: Path) -> Executions:
    return Executions(tmp_path)


def test_a_lone_request_runs_on_the_receiver_that_took_it(
    local_cloud, lab_of_two_receivers, threads
):
    invocation = invoke_in_background(
        local_cloud, lab_of_two_receivers.name, {"id": "alone"}
    )

    assert invocation.result(20).function_error is None
    assert threads.by_event["alone"].startswith("mless-receiver-")


def test_requests_still_start_while_a_receiver_runs_a_long_handler(
    local_cloud, lab_of_two_receivers, executions, threads, tmp_path
):
    name = lab_of_two_receivers.name
    release = tmp_path / "release"
    held = []
    for event_id in ("held-1", "held-2"):
        held.append(
            invoke_in_background(
                local_cloud, name, {"id": event_id, "until": str(release)}
            )
        )
        wait_until(lambda started=event_id: executions.starts(started), 20, event_id)

    # Both held handlers still run; a third request must not wait for them.
    quick = invoke_in_background(local_cloud, name, {"id": "quick"})
    assert quick.result(20).function_error is None
    assert [line[1] for line in executions.lines() if line[0] == "end"] == ["quick"]
    release.touch()

    assert all(invocation.result(20).function_error is None for invocation in held)
    on_receivers = [
        event_id
        for event_id, thread in threads.by_event.items()
        if thread.startswith("mless-receiver-")
    ]
    assert on_receivers == ["held-1"], threads.by_event
