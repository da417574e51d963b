"""The history of invocations: what a record keeps, what it never keeps, rotation."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.environments.process import Outcome
from bridge.errors import ConfigurationError, RecordNotFoundError
from bridge.function_settings import FunctionSettings
from bridge.history import (
    History,
    HistoryRecorder,
    build_record,
    mless_home,
    notify_each,
    recorded_outcome,
    summary_line,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN"
ACCESS_KEY = "ASIAEXAMPLEACCESSKEY"
START = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _request(request_id: str = "1b2c3d4e-0000-4000-8000-000000000001") -> Any:
    return {
        "v": 1,
        "kind": "request",
        "correlation_id": "c0ffee",
        "request_id": request_id,
        "function": {
            "name": "thumbnails",
            "version": "$LATEST",
            "invoked_arn": "arn:aws:lambda:us-east-1:123456789012:function:thumbnails",
            "memory_mb": 256,
            "timeout_ms": 3000,
            "region": "us-east-1",
            "log_group": "/aws/lambda/thumbnails",
            "log_stream": "2026/12/03/[$LATEST]0123",
        },
        "deadline_ms": 1796299203000,
        "sent_at_ms": 1796299200000,
        "event": {"Records": [{"eventSource": "aws:sqs", "body": "resize cat.png"}]},
        "client_context": {"custom": {"tenant": "acme"}, "env": None, "client": None},
        "identity": None,
        "trace_id": "Root=1-6565a1b2-0123456789abcdef01234567;Sampled=0",
        "tenant_id": None,
        "environment": {
            "BUCKET": "cats",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_SESSION_TOKEN": SESSION_TOKEN,
            "aws_secret_something": SECRET,
        },
        "credentials": {
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET,
            "session_token": SESSION_TOKEN,
        },
        "mode": "async",
        "reply_to": None,
    }


def _outcome(request_id: str = "1b2c3d4e-0000-4000-8000-000000000001") -> Outcome:
    return Outcome(request_id, "success", payload='{"ok": true}', duration_ms=41.5)


def _add(history: History, request_id: str, minutes: int = 0) -> Path:
    record = build_record(
        _request(request_id),
        _outcome(request_id),
        now=START + timedelta(minutes=minutes),
    )
    return history.add(record)


def test_a_record_keeps_event_and_context_but_no_credentials(tmp_path):
    history = History(tmp_path)

    path = history.add(build_record(_request(), _outcome()))

    text = path.read_text()
    for secret in (SECRET, SESSION_TOKEN, ACCESS_KEY):
        assert secret not in text
    record = history.load("1b2c3d4e")
    assert record["environment"] == {"BUCKET": "cats"}
    assert record["event"] == _request()["event"]
    assert record["client_context"] == {
        "custom": {"tenant": "acme"},
        "env": None,
        "client": None,
    }
    assert record["function"]["invoked_arn"].endswith(":function:thumbnails")
    assert (record["event_source"], record["mode"]) == ("SQS", "async")
    assert record["outcome"] == {
        "status": "success",
        "payload": '{"ok": true}',
        "duration_ms": 41.5,
        "max_memory_mb": 0,
    }


def test_the_history_lives_under_mless_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLESS_HOME", str(tmp_path / "home"))

    path = History().add(build_record(_request(), _outcome()))

    assert mless_home() == tmp_path / "home"
    assert path.parent == tmp_path / "home" / "history"


def test_history_files_are_readable_by_their_owner_only(tmp_path):
    history = History(tmp_path / "history")

    path = history.add(build_record(_request(), _outcome()))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_recent_lists_the_newest_first_up_to_the_limit(tmp_path):
    history = History(tmp_path)
    for minute, request_id in enumerate(["aaaa-1", "bbbb-2", "cccc-3"]):
        _add(history, request_id, minutes=minute)

    recent = history.recent(limit=2)

    assert [record["request_id"] for record in recent] == ["cccc-3", "bbbb-2"]


def test_a_unique_prefix_loads_its_record(tmp_path):
    history = History(tmp_path)
    _add(history, "aaaa-1")
    _add(history, "abcd-2", minutes=1)

    assert history.load("ab")["request_id"] == "abcd-2"
    assert history.load("aaaa-1")["request_id"] == "aaaa-1"


def test_a_whole_id_loads_its_record_even_when_it_starts_another(tmp_path):
    history = History(tmp_path)
    _add(history, "abcd-1")
    _add(history, "abcd-10", minutes=1)

    assert history.load("abcd-1")["request_id"] == "abcd-1"


def test_an_ambiguous_prefix_is_a_user_error_naming_the_candidates(tmp_path):
    history = History(tmp_path)
    _add(history, "abcd-1")
    _add(history, "abef-2", minutes=1)

    with pytest.raises(ConfigurationError) as raised:
        history.load("ab")

    message = str(raised.value)
    assert "abcd-1" in message and "abef-2" in message
    assert "\n" not in message


def test_an_unknown_id_is_a_one_line_user_error(tmp_path):
    history = History(tmp_path)
    _add(history, "abcd-1")

    with pytest.raises(RecordNotFoundError, match="`mless history` lists them"):
        history.load("ffff")


def test_an_empty_history_has_no_records_and_finds_no_id(tmp_path):
    history = History(tmp_path / "never-written")

    assert history.recent() == []
    with pytest.raises(RecordNotFoundError):
        history.load("abcd")


def test_a_request_id_recorded_twice_loads_the_later_record(tmp_path):
    history = History(tmp_path)
    first = build_record(_request("abcd-1"), _outcome("abcd-1"), now=START)
    retried = build_record(
        _request("abcd-1"),
        Outcome("abcd-1", "error", error={"errorType": "ValueError"}),
        now=START + timedelta(minutes=1),
    )
    history.add(first)
    history.add(retried)

    assert history.load("abcd")["outcome"]["status"] == "error"


def test_the_oldest_records_go_once_the_history_passes_its_cap(tmp_path):
    size = _add(History(tmp_path / "probe"), "probe-0").stat().st_size
    history = History(tmp_path / "history", max_bytes=3 * size + size // 2)

    for minute in range(5):
        _add(history, f"id{minute}-0000", minutes=minute)

    kept = [record["request_id"] for record in history.recent(limit=10)]
    assert kept == ["id4-0000", "id3-0000", "id2-0000"]


def test_a_record_larger_than_the_cap_is_kept_alone(tmp_path):
    history = History(tmp_path, max_bytes=10)
    _add(history, "old-1")

    _add(history, "new-2", minutes=1)

    assert [record["request_id"] for record in history.recent()] == ["new-2"]


def test_a_request_id_cannot_lead_a_record_out_of_the_history(tmp_path):
    history = History(tmp_path / "history")

    path = _add(history, "../../escape")

    assert path.parent == tmp_path / "history"
    assert history.load("../../escape")["request_id"] == "../../escape"


def test_a_record_gives_back_its_outcome(tmp_path):
    outcome = Outcome(
        "abcd-1",
        "error",
        error={"errorType": "KeyError", "errorMessage": "'x'"},
        duration_ms=3.25,
        init_duration_ms=120.5,
        max_memory_mb=61,
    )

    record = build_record(_request("abcd-1"), outcome)

    assert recorded_outcome(record) == outcome


def test_a_record_says_where_the_code_was_when_the_lab_knew(tmp_path):
    settings = FunctionSettings("thumbnails", "app.handler", tmp_path)

    record = build_record(_request(), _outcome(), settings)

    assert record["code"]["handler"] == "app.handler"
    assert record["code"]["code_dir"] == str(tmp_path)
    assert record["code"]["runtime"] == settings.runtime


def test_summary_line_shows_time_id_function_source_mode_and_outcome():
    record = build_record(_request("abcd-1"), _outcome("abcd-1"), now=START)

    assert summary_line(record) == (
        "2026-12-03 12:00:00  abcd-1  thumbnails  SQS  async  success  42 ms"
    )


def test_the_recorder_logs_and_carries_on_when_the_disk_refuses(tmp_path, caplog):
    blocker = tmp_path / "history"
    blocker.write_text("a file where the directory should be")
    recorder = HistoryRecorder(History(blocker))

    with caplog.at_level(logging.WARNING, logger="bridge.history"):
        recorder(_request(), _outcome())

    assert "was not recorded" in caplog.text


def test_the_recorder_records_through_the_labs_listener(tmp_path):
    history = History(tmp_path)
    settings = FunctionSettings("thumbnails", "app.handler", tmp_path)

    HistoryRecorder(history, [settings])(_request(), _outcome())

    assert history.recent()[0]["code"]["handler"] == "app.handler"


def test_notify_each_calls_every_listener_even_after_one_fails(caplog):
    heard: list[str] = []

    def broken(request: Any, outcome: Outcome) -> None:
        raise RuntimeError("listener bug")

    listener = notify_each(broken, lambda request, outcome: heard.append("second"))
    with caplog.at_level(logging.ERROR, logger="bridge.history"):
        listener(_request(), _outcome())

    assert heard == ["second"]
    assert "listener bug" in caplog.text
