"""The lab's console: blocks per invocation, colours, JSON lines, threads."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from typing import Any

import pytest

from bridge.console import Console
from bridge.environments.process import Outcome

REQUEST_ID = "1b2c3d4e-1111-2222-3333-444455556666"
S3_EVENT = {"Records": [{"eventSource": "aws:s3", "s3": {}}]}


def _request(
    function: str = "thumbnails", request_id: str = REQUEST_ID, **fields: Any
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "function": {"name": function, "memory_mb": 256},
        "event": S3_EVENT,
        "mode": "sync",
        **fields,
    }


def _run(
    console: Console,
    function: str = "thumbnails",
    request_id: str = REQUEST_ID,
    outcome: Outcome | None = None,
    lines: tuple[str, ...] = ("resizing cat.png",),
) -> Outcome:
    outcome = outcome or Outcome(request_id, "success", payload="{}", duration_ms=12.5)
    console.start(function, request_id, "$LATEST")
    for text in lines:
        console.line(function, request_id, text)
    console.end(function, outcome, 256)
    request: Any = _request(function, request_id)
    console.on_outcome(request, outcome)
    return outcome


def test_an_invocation_is_a_block_with_the_handlers_output_between_start_and_end():
    stream = io.StringIO()

    _run(Console(stream, color=False))

    lines = stream.getvalue().splitlines()
    assert all(line.startswith("thumbnails 1b2c3d4e ") for line in lines), lines
    assert f"START RequestId: {REQUEST_ID} Version: $LATEST" in lines[0]
    assert lines[1].endswith("resizing cat.png")
    assert f"END RequestId: {REQUEST_ID}" in lines[2]
    assert f"REPORT RequestId: {REQUEST_ID}  Duration: 12.50 ms" in lines[3]
    assert "Memory Size: 256 MB" in lines[3]


def test_the_end_names_event_source_mode_and_outcome_once_the_outcome_arrives():
    stream = io.StringIO()
    console = Console(stream, color=False, await_outcomes=True)
    outcome = Outcome(REQUEST_ID, "error", error={"errorType": "KeyError"})

    console.start("thumbnails", REQUEST_ID, "$LATEST")
    console.end("thumbnails", outcome, 256)
    before = stream.getvalue()
    console.on_outcome(_request(), outcome)  # type: ignore[arg-type]

    assert "END" not in before
    end_line = stream.getvalue().splitlines()[1]
    assert end_line.endswith("S3 · sync · error KeyError")


def test_without_awaiting_outcomes_the_end_comes_at_once_and_says_the_outcome():
    stream = io.StringIO()
    console = Console(stream, color=False)
    outcome = Outcome(REQUEST_ID, "timeout", duration_ms=3000.0)

    console.start("thumbnails", REQUEST_ID, "$LATEST")
    console.end("thumbnails", outcome, 256)

    assert (
        stream.getvalue().splitlines()[1].endswith(f"RequestId: {REQUEST_ID}  timeout")
    )


def test_a_block_whose_outcome_never_comes_is_closed_all_the_same(monkeypatch):
    monkeypatch.setattr("bridge.console.OUTCOME_WAIT_SECONDS", 0.05)
    stream = io.StringIO()
    console = Console(stream, color=False, await_outcomes=True)

    console.start("thumbnails", REQUEST_ID, "$LATEST")
    console.end("thumbnails", Outcome(REQUEST_ID, "success"), 256)
    deadline = time.monotonic() + 5
    while "REPORT" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    request: Any = _request()
    console.on_outcome(request, Outcome(REQUEST_ID, "success"))

    lines = stream.getvalue().splitlines()
    assert lines[1].endswith(f"END RequestId: {REQUEST_ID}  success")
    assert [line for line in lines if "REPORT" in line] == [lines[2]]


def test_an_outcome_without_a_block_gets_one_of_its_own():
    stream = io.StringIO()
    console = Console(stream, color=False, await_outcomes=True)
    error = {"errorType": "Mless.FunctionNotInLab", "errorMessage": "no code"}

    request: Any = _request()
    console.on_outcome(request, Outcome(REQUEST_ID, "error", error=error))

    text = stream.getvalue()
    assert "S3 · sync · error Mless.FunctionNotInLab" in text
    assert f"REPORT RequestId: {REQUEST_ID}" in text


def test_plain_text_has_no_escape_codes_on_a_stream_that_is_no_terminal():
    stream = io.StringIO()

    _run(Console(stream))

    assert "\x1b" not in stream.getvalue()


def test_no_color_option_wins_over_a_terminal():
    stream = _Terminal()

    _run(Console(stream, color=False))

    assert "\x1b" not in stream.getvalue()


def test_no_color_variable_turns_colours_off(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    stream = _Terminal()

    _run(Console(stream))

    assert "\x1b" not in stream.getvalue()


def test_each_function_has_a_colour_of_its_own_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = _Terminal()
    console = Console(stream)

    _run(console, "thumbnails", "aaaaaaaa-0000")
    _run(console, "billing", "bbbbbbbb-0000")

    first, second = (
        _escape_before(stream.getvalue(), name) for name in ("thumbnails", "billing")
    )
    assert first and second and first != second


def test_json_mode_writes_one_object_per_start_line_and_end():
    stream = io.StringIO()
    console = Console(stream, json_lines=True, await_outcomes=True)

    _run(console, lines=("one", "two\rthree"))
    console.note("lab started")

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [event["type"] for event in events] == [
        "start",
        "line",
        "line",
        "end",
        "note",
    ]
    assert events[2]["text"] == "two\rthree"
    end = events[3]
    assert end["request_id"] == REQUEST_ID
    assert end["function"] == "thumbnails"
    assert (end["event_source"], end["mode"], end["status"]) == (
        "S3",
        "sync",
        "success",
    )
    assert end["duration_ms"] == 12.5
    assert end["report"].startswith(f"REPORT RequestId: {REQUEST_ID}\t")


def test_carriage_returns_in_a_log_line_become_lines_of_the_block():
    stream = io.StringIO()

    _run(Console(stream, color=False), lines=("Traceback:\r  File x\r    boom",))

    output_lines = stream.getvalue().splitlines()[1:4]
    assert [line.split("│ ", 1)[1] for line in output_lines] == [
        "Traceback:",
        "  File x",
        "    boom",
    ]


def test_init_output_is_attributed_to_init():
    stream = io.StringIO()

    Console(stream, color=False).line("thumbnails", None, "loading model")

    assert re.match(r"thumbnails init +│ loading model$", stream.getvalue().strip())


def test_overlapping_invocations_write_whole_lines_each_attributed():
    stream = io.StringIO()
    console = Console(stream, color=False)
    functions = [(f"fn{index}", f"{index:08d}-id") for index in range(8)]

    def run(function: str, request_id: str) -> None:
        lines = tuple(f"{function} line {number}" for number in range(50))
        _run(console, function, request_id, lines=lines)

    threads = [threading.Thread(target=run, args=pair) for pair in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for line in stream.getvalue().splitlines():
        match = re.match(r"(fn\d) +(\d{8}) [┌│└] (.*)$", line)
        assert match, line
        function, short_id, text = match.groups()
        assert short_id == f"{int(function[2:]):08d}"
        if " line " in text:
            assert text.startswith(f"{function} line ")


def test_a_stream_that_cannot_show_box_drawing_gets_ascii():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")

    _run(Console(stream, color=False), lines=("caf\u00e9",))

    text = raw.getvalue().decode("ascii")
    assert "| caf?" in text
    assert "+ START" in text


def test_a_long_step_shows_its_start_and_how_long_it_took():
    stream = io.StringIO()
    console = Console(stream, color=False)

    with console.step("deploying the stack"):
        pass
    with pytest.raises(RuntimeError), console.step("attaching thumbnails"):
        raise RuntimeError("denied")

    lines = stream.getvalue().splitlines()
    assert lines[0] == "mless: deploying the stack ..."
    assert re.fullmatch(r"mless: deploying the stack: done in \d+\.\d s", lines[1])
    assert re.fullmatch(
        r"mless: attaching thumbnails: failed after \d+\.\d s", lines[3]
    )


def test_a_long_step_is_two_json_objects_in_json_mode():
    stream = io.StringIO()

    with Console(stream, json_lines=True).step("deploying the stack"):
        pass

    started, done = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (started["type"], started["status"], started["seconds"]) == (
        "step",
        "started",
        None,
    )
    assert done["status"] == "done" and done["seconds"] >= 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _escape_before(text: str, name: str) -> str | None:
    match = re.search(r"(\x1b\[[0-9;]*m)" + re.escape(name), text)
    return match.group(1) if match else None


@pytest.fixture(autouse=True)
def _no_forced_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
