"""Replay: an invocation recorded by the lab runs again on this machine.

Each test records a real invocation through the whole bridge on the local
cloud (a lab whose outcome listener is the history recorder), then replays
the record without the local cloud's help unless it says otherwise.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.console import Console
from bridge.errors import ConfigurationError
from bridge.function_settings import FunctionSettings
from bridge.history import History, HistoryRecorder, Record
from bridge.lab import Lab
from bridge.replay import replay, save_fixture, settings_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HANDLERS = textwrap.dedent(
    """
    import os

    def double(event, context):
        print("doubling", event["n"])
        return {"double": event["n"] * 2}

    def context_fields(event, context):
        return {
            "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn,
            "function": context.function_name,
            "memory": context.memory_limit_in_mb,
            "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
            "greeting": os.environ.get("GREETING"),
            "remaining_ms": context.get_remaining_time_in_millis(),
        }

    def spill_credentials(event, context):
        with open(event["spill_to"], "w") as spill:
            spill.write(os.environ["AWS_SECRET_ACCESS_KEY"] + "\\n")
            spill.write(os.environ.get("AWS_SESSION_TOKEN", ""))
        return "spilled"

    def whoami(event, context):
        import boto3
        return boto3.client("sts").get_caller_identity()["Arn"]

    def credential_sources(event, context):
        names = ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                 "AWS_EC2_METADATA_DISABLED")
        return {name: os.environ.get(name) for name in names}
    """
)

Record_ = Callable[..., Record]


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "app.py").write_text(HANDLERS)
    return folder


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "history")


@pytest.fixture
def record_invocation(local_cloud, lab_log, history) -> Iterator[Record_]:
    """Invoke a handler through the bridge once and return its record."""
    labs: list[Lab] = []

    def invoke(
        handler: str,
        code_dir: Path,
        event: Any,
        *,
        runtime: str | None = None,
        timeout_seconds: int = 3,
        environment: dict[str, str] | None = None,
    ) -> Record:
        name = f"replay-{uuid.uuid4().hex[:12]}"
        local_cloud.create_function(
            name, timeout_seconds=timeout_seconds, environment=environment
        )
        extra = {"runtime": runtime} if runtime else {}
        settings = FunctionSettings(name, handler, code_dir, **extra)
        lab = Lab(
            local_cloud.clients.client("sqs"),
            local_cloud.queues,
            [settings],
            lab_log,
            endpoint_url=local_cloud.endpoint_url,
            poll_wait_seconds=1,
            on_outcome=HistoryRecorder(history, [settings]),
        ).start()
        labs.append(lab)
        result = local_cloud.lambda_service.invoke(name, json.dumps(event).encode())
        assert result.function_error is None, result.payload
        return history.recent(limit=1)[0]

    yield invoke
    for lab in labs:
        lab.stop()


def test_replay_reproduces_the_recorded_result_of_a_deterministic_handler(
    record_invocation, code_dir
):
    record = record_invocation("app.double", code_dir, {"n": 21})
    console_output = io.StringIO()

    result = replay(record, Console(console_output, color=False))

    assert json.loads(record["outcome"]["payload"]) == {"double": 42}
    assert result.same_as_recorded
    assert json.loads(result.payload) == {"double": 42}
    assert not result.function_error
    assert "doubling 21" in console_output.getvalue()


def test_replay_keeps_the_context_fields_and_gives_a_fresh_deadline(
    record_invocation, code_dir
):
    record = record_invocation(
        "app.context_fields",
        code_dir,
        {},
        timeout_seconds=3,
        environment={"GREETING": "hello"},
    )
    recorded = json.loads(record["outcome"]["payload"])
    # Past the recorded invocation's own deadline.
    time.sleep(3.2)

    replayed = json.loads(replay(record, Console(io.StringIO())).payload)

    assert recorded["trace_id"] and recorded["greeting"] == "hello"
    for field in ("request_id", "arn", "function", "memory", "trace_id", "greeting"):
        assert replayed[field] == recorded[field], field
    assert 0 < replayed["remaining_ms"] <= 3000


def test_replay_runs_the_current_code(record_invocation, code_dir):
    record = record_invocation("app.double", code_dir, {"n": 2})
    app = code_dir / "app.py"
    app.write_text(app.read_text().replace('event["n"] * 2', 'event["n"] * 3'))

    result = replay(record, Console(io.StringIO()))

    assert json.loads(result.payload) == {"double": 6}
    assert not result.same_as_recorded


def test_the_history_of_a_bridge_invocation_holds_no_credentials(
    record_invocation, code_dir, history, tmp_path
):
    spill = tmp_path / "credentials-the-handler-saw"

    record = record_invocation(
        "app.spill_credentials", code_dir, {"spill_to": str(spill)}
    )

    secret, session_token = spill.read_text().split("\n")
    assert secret and session_token
    stored = "".join(path.read_text() for path in history.directory.iterdir())
    assert record["outcome"]["payload"] == '"spilled"'
    assert secret not in stored
    assert session_token not in stored


def test_a_replayed_handler_gets_no_credentials_unless_given_some(
    record_invocation, code_dir, local_cloud
):
    record = record_invocation("app.whoami", code_dir, {})
    assert ":assumed-role/" in record["outcome"]["payload"]

    without = replay(record, Console(io.StringIO()))
    given = replay(
        record,
        Console(io.StringIO()),
        credentials={
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "session_token": None,
        },
        endpoint_url=local_cloud.endpoint_url,
    )

    assert without.outcome.error_type == "NoCredentialsError"
    assert given.outcome.error is None


def test_a_replay_without_credentials_closes_the_sdks_other_sources(
    record_invocation, code_dir
):
    record = record_invocation("app.credential_sources", code_dir, {})

    sources = json.loads(replay(record, Console(io.StringIO())).payload)

    assert json.loads(record["outcome"]["payload"]) == dict.fromkeys(sources)
    assert sources == {
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_a_node_function_replays_in_a_node_environment(record_invocation):
    record = record_invocation(
        "index.handler", EXAMPLES / "node", {"name": "Ada"}, runtime="nodejs20.x"
    )

    result = replay(record, Console(io.StringIO()))

    payload = json.loads(result.payload)
    assert payload["greeting"] == "Hello, Ada!"
    assert payload["runtime"] == "AWS_Lambda_nodejs20.x"
    assert result.same_as_recorded


def test_save_fixture_writes_the_recorded_event_as_json(
    record_invocation, code_dir, tmp_path
):
    event = {"n": 5, "note": "grüße 👋"}
    record = record_invocation("app.double", code_dir, event)
    fixture = tmp_path / "double-5.json"

    save_fixture(record, fixture)

    text = fixture.read_text(encoding="utf-8")
    assert json.loads(text) == event
    assert text.endswith("}\n") and "grüße 👋" in text


def test_save_fixture_into_a_missing_folder_is_a_one_line_user_error(tmp_path):
    record: Any = {"event": {"n": 1}}

    with pytest.raises(ConfigurationError, match="Could not write the event to"):
        save_fixture(record, tmp_path / "no" / "such" / "fixture.json")


def test_a_record_that_does_not_say_where_its_code_is_needs_it_named(
    code_dir,
):
    record: Any = {"request_id": "abcd-1", "function": {"name": "elsewhere"}}

    with pytest.raises(ConfigurationError, match="name its handler and code"):
        settings_for(record)
    settings = settings_for(record, handler="app.double", code_dir=code_dir)
    assert (settings.name, settings.handler) == ("elsewhere", "app.double")


def test_a_relative_code_directory_is_found_from_where_replay_runs(
    code_dir, monkeypatch
):
    monkeypatch.chdir(code_dir.parent)
    record: Any = {"request_id": "abcd-1", "function": {"name": "doubler"}}

    settings = settings_for(record, handler="app.double", code_dir=Path("code"))

    assert settings.code_dir == code_dir.resolve()


def test_a_runtime_missing_from_this_machine_is_a_one_line_user_error(
    monkeypatch, tmp_path
):
    record: Any = {"request_id": "abcd-1", "function": {"name": "greeter"}}
    settings = settings_for(
        record,
        handler="index.handler",
        code_dir=EXAMPLES / "node",
        runtime="nodejs20.x",
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no node here

    with pytest.raises(ConfigurationError) as raised:
        replay(_as_record(record), Console(io.StringIO()), settings=settings)

    assert "Could not start an execution environment for 'greeter'" in str(raised.value)
    assert "\n" not in str(raised.value)


def _as_record(partial: dict[str, Any]) -> Any:
    return {
        **partial,
        "function": {
            "name": partial["function"]["name"],
            "version": "$LATEST",
            "invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:greeter",
            "memory_mb": 128,
            "timeout_ms": 3000,
            "region": "us-east-1",
            "log_group": "/aws/lambda/greeter",
            "log_stream": "2026/12/03/[$LATEST]0123",
        },
        "event": {"name": "Ada"},
        "environment": {},
    }
