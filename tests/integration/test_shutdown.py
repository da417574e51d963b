"""Ctrl+C and SIGTERM: running invocations finish, waiting ones go back, nothing lost.

Each test runs the lab in a process of its own (`lab_process.py`), serving
as `mless run` does through `bridge.shutdown.serve_until_signalled`, and
signals it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lab_process import LabProcess, kill_leftover_environments, lab_config
from reliability_support import (
    Executions,
    deploy,
    invoke_in_background,
    wait_until,
)


@pytest.fixture
def executions(tmp_path) -> Iterator[Executions]:
    executions = Executions(tmp_path)
    yield executions
    kill_leftover_environments({int(line[2]) for line in executions.lines()})


@pytest.fixture
def labs() -> Iterator[list[LabProcess]]:
    started: list[LabProcess] = []
    yield started
    for lab in started:
        lab.close()


def serving(local_cloud: Any, settings: Any, **options: Any) -> dict[str, Any]:
    function = {
        "name": settings.name,
        "handler": settings.handler,
        "code_dir": str(settings.code_dir),
        "concurrency": settings.concurrency,
    }
    return lab_config(local_cloud, [function], **options)


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_lets_the_running_invocation_finish_and_exits_0(
    local_cloud, executions, labs, stop_signal
):
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=10,
        environment=executions.environment,
    )
    lab = LabProcess(serving(local_cloud, settings, grace_seconds=10))
    labs.append(lab)
    invocation = invoke_in_background(
        local_cloud, settings.name, {"id": "finishing", "sleep": 2}
    )
    executions.wait_for_start("finishing", invocation)

    lab.signal(stop_signal)
    note = lab.wait_for(r"^NOTE Stopping")
    status = lab.wait(15)
    outcome = invocation.result(10)

    assert "1 invocation(s) running" in note
    assert status == 0
    assert outcome.function_error is None, outcome.payload
    assert json.loads(outcome.payload)["id"] == "finishing"
    assert executions.start_counts() == {"finishing": 1}
    assert lab.stats()["ran"] == 1
    # Its delete was sent before the lab exited, not left to a thread.
    assert _in_flight(local_cloud) == 0


def test_requests_received_but_not_started_go_back_to_the_queue_at_once(
    local_cloud, executions, labs
):
    # One environment only: the second request waits for the first's.
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=20,
        environment=executions.environment,
        concurrency=1,
    )
    # A long visibility timeout: coming back "at once" must not mean "after it".
    config = serving(local_cloud, settings, visibility_timeout_seconds=30)
    first_lab = LabProcess(config)
    labs.append(first_lab)
    running = invoke_in_background(
        local_cloud, settings.name, {"id": "running", "sleep": 2}
    )
    executions.wait_for_start("running", running)
    waiting = invoke_in_background(local_cloud, settings.name, {"id": "waiting"})
    wait_until(
        lambda: _in_flight(local_cloud) == 2, 10, "the second request reaching the lab"
    )

    first_lab.signal(signal.SIGINT)
    assert first_lab.wait(15) == 0
    stopped_at = time.monotonic()
    second_lab = LabProcess(config)
    labs.append(second_lab)
    outcome = waiting.result(20)

    assert first_lab.stats()["released"] == 1
    assert time.monotonic() - stopped_at < 10
    assert outcome.function_error is None, outcome.payload
    assert json.loads(outcome.payload)["id"] == "waiting"
    assert running.result(10).function_error is None
    assert executions.start_counts() == {"running": 1, "waiting": 1}


@pytest.fixture
def purged_afterwards(local_cloud: Any) -> Iterator[None]:
    """Empty the request queue once the test is over.

    A lab that exits at once leaves the request it ran in flight until its
    visibility timeout; a later test waiting for the queue to empty would
    wait for that.
    """
    yield
    local_cloud.clients.client("sqs").purge_queue(
        QueueUrl=local_cloud.queues.request_queue_url
    )


def test_a_second_ctrl_c_exits_at_once(
    local_cloud, executions, labs, purged_afterwards
):
    settings = deploy(
        local_cloud,
        "reliability.record",
        timeout_seconds=30,
        environment=executions.environment,
    )
    lab = LabProcess(serving(local_cloud, settings, grace_seconds=25))
    labs.append(lab)
    stuck = invoke_in_background(
        local_cloud, settings.name, {"id": "stuck", "sleep": 25}
    )
    pid = int(executions.wait_for_start("stuck", stuck)[2])

    lab.signal(signal.SIGINT)
    lab.wait_for(r"^NOTE Stopping")
    time.sleep(0.5)
    pressed_at = time.monotonic()
    lab.signal(signal.SIGINT)
    status = lab.wait(10)

    assert status == 130
    assert time.monotonic() - pressed_at < 3
    wait_until(lambda: not _alive(pid), 5, "the execution environment ending")


def _in_flight(local_cloud: Any) -> int:
    """Request messages received and neither deleted nor visible again."""
    attributes = local_cloud.clients.client("sqs").get_queue_attributes(
        QueueUrl=local_cloud.queues.request_queue_url,
        AttributeNames=["ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of an exited parent is reaped by init; until then it
    # is a zombie, which is as good as gone.
    status = open(f"/proc/{pid}/status").read()
    return "State:\tZ" not in status
