"""`mless history` and `mless replay` through click's runner."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.function_settings import FunctionSettings
from bridge.history import History, HistoryRecorder
from bridge.lab import Lab


@pytest.fixture
def recorded(local_cloud, lab_log, tmp_path, monkeypatch):
    """One invocation through the bridge, recorded under a fresh MLESS_HOME."""
    monkeypatch.setenv("MLESS_HOME", str(tmp_path / "home"))
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "app.py").write_text(
        "def handler(event, context):\n    return {'twice': event['n'] * 2}\n"
    )
    name = f"cli-history-{uuid.uuid4().hex[:8]}"
    local_cloud.create_function(name)
    settings = FunctionSettings(name, "app.handler", code_dir)
    with Lab(
        local_cloud.clients.client("sqs"),
        local_cloud.queues,
        [settings],
        lab_log,
        endpoint_url=local_cloud.endpoint_url,
        poll_wait_seconds=1,
        on_outcome=HistoryRecorder(History(), [settings]),
    ):
        result = local_cloud.lambda_service.invoke(name, b'{"n": 21}')
    assert json.loads(result.payload) == {"twice": 42}
    return History().recent(1)[0]


def test_history_lists_the_recorded_invocation(recorded):
    result = CliRunner().invoke(main, ["history", "--json"])

    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [entry["request_id"] for entry in listed] == [recorded["request_id"]]


def test_replay_prints_the_same_payload_from_a_request_id_prefix(recorded):
    result = CliRunner().invoke(main, ["replay", recorded["request_id"][:8]])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"twice": 42}


def test_replay_save_writes_the_event_as_a_fixture(recorded, tmp_path):
    fixture = tmp_path / "event.json"

    result = CliRunner().invoke(
        main, ["replay", recorded["request_id"], "--save", str(fixture)]
    )

    assert result.exit_code == 0, result.output
    assert json.loads(fixture.read_text()) == {"n": 21}


def test_replay_of_an_unknown_id_is_one_line_and_exit_2(recorded):
    result = CliRunner().invoke(main, ["replay", "no-such-request"])

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mless: ")
