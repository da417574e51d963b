"""The function's own handler running in Lambda: library mode and mirror mode.

The functions here are deployed with their own code beside the proxy (as an
attached function has its code and the proxy's layer); the `offline`
handlers say whether they ran in Lambda (the local cloud's stand-in) or in
the lab.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from offline_support import (
    HANDLERS,
    Executions,
    Labs,
    deploy,
    invoke,
    settings,
    wait_for_presence,
)

from lambda_proxy.presence import ONLINE_CACHE_SECONDS, Presence

# Running in place costs no more than the handler; generous on a shared machine.
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


def _payload(result) -> dict:
    assert result.function_error is None, result.payload
    return json.loads(result.payload)


def test_library_mode_forwards_only_the_events_it_selects(
    local_cloud, labs, executions
):
    name = deploy(local_cloud, executions, code_dir=HANDLERS, handler="offline.picked")
    labs.start([settings(name, "offline.picked")])

    picked, _ = invoke(local_cloud, name, {"id": "picked", "debug": True})
    passed, _ = invoke(local_cloud, name, {"id": "passed"})

    assert _payload(picked) == {"id": "picked", "where": "lab"}
    assert _payload(passed) == {"id": "passed", "where": "aws"}
    assert executions.where("picked") == ["lab"]
    assert executions.where("passed") == ["aws"]


def test_library_mode_runs_a_selected_event_in_place_while_the_lab_is_offline(
    local_cloud, labs, executions
):
    name = deploy(local_cloud, executions, code_dir=HANDLERS, handler="offline.picked")
    lab = labs.start([settings(name, "offline.picked")])
    invoke(local_cloud, name, {"id": "warm", "debug": True})

    labs.stop(lab)
    wait_for_presence(local_cloud, Presence.OFFLINE)
    time.sleep(ONLINE_CACHE_SECONDS + 0.2)  # what the function read expires
    result, seconds = invoke(local_cloud, name, {"id": "fallback", "debug": True})

    assert _payload(result) == {"id": "fallback", "where": "aws"}
    assert seconds < FAST_ANSWER_SECONDS, seconds
    assert executions.where("fallback") == ["aws"]


def test_mirror_mode_returns_the_deployed_handlers_result_while_the_lab_runs_it_too(
    local_cloud, labs, executions
):
    name = deploy(
        local_cloud,
        executions,
        mode="mirror",
        code_dir=HANDLERS,
        original_handler="offline.record",
    )
    labs.start([settings(name)])

    result, _ = invoke(local_cloud, name, {"id": "mirrored"})
    executions.wait_for("mirrored", "lab")

    assert _payload(result) == {"id": "mirrored", "where": "aws"}
    assert sorted(executions.where("mirrored")) == ["aws", "lab"]
    assert list(labs.log.modes.values()) == ["mirror"]


def test_mirror_mode_without_the_original_handler_says_so(local_cloud, executions):
    name = deploy(local_cloud, executions, mode="mirror")

    result, _ = invoke(local_cloud, name, {"id": "nowhere"})

    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Mless.MirrorUnavailable"
    assert "MLESS_ORIGINAL_HANDLER" in error["errorMessage"]
    assert executions.lines() == []
