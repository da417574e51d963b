"""What the lab's terminal shows: each invocation as a block, framed as CloudWatch does.

A block holds what CloudWatch would show of one invocation: START, the
handler's own output, END and the REPORT line. The END line adds where the
event came from, the mode and the outcome. Every line of a block starts with
the function's name and the start of the request id, so the lines of
overlapping invocations stay attributed when they interleave; each function
has a colour of its own when the terminal shows colours.

In JSON mode every START, output line, END, note and step is one JSON
object on a line of its own, for other programs to read.

The lab's poller tells its listener each invocation's event source and mode
right after the END (see `on_outcome`); a console made with
`await_outcomes=True` holds END and REPORT back until then.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.color import ColorSystem
from rich.console import Console as RichConsole
from rich.style import Style

from bridge.environments.process import Outcome
from bridge.event_source import event_source
from lambda_proxy import wire


def report_line(outcome: Outcome, memory_mb: int) -> str:
    """Lambda's REPORT line for one invocation."""
    init_ms = outcome.init_duration_ms or 0.0
    fields = [
        f"REPORT RequestId: {outcome.request_id}",
        f"Duration: {outcome.duration_ms:.2f} ms",
        # Lambda bills the init phase too, rounded up to the millisecond.
        f"Billed Duration: {math.ceil(outcome.duration_ms + init_ms)} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {outcome.max_memory_mb} MB",
    ]
    if outcome.init_duration_ms is not None:
        fields.append(f"Init Duration: {outcome.init_duration_ms:.2f} ms")
    if outcome.status == "timeout":
        fields.append("Status: timeout")
    elif _failed_outside_the_handler(outcome):
        fields.append(f"Status: error\tError Type: {outcome.error_type}")
    return "\t".join(fields) + "\t"


def _failed_outside_the_handler(outcome: Outcome) -> bool:
    # Lambda marks the REPORT line when the runtime crashed, init failed (its
    # error has an empty request id) or the platform refused the response;
    # an error the handler raised is the function's answer, not a status.
    error = outcome.error or {}
    return (
        outcome.status == "crash"
        or error.get("requestId") == ""
        or str(error.get("errorType", "")).startswith("Function.")
    )


def outcome_text(outcome: Outcome) -> str:
    """How an invocation ended, in a few words: `success`, `error KeyError`."""
    if outcome.status in ("success", "timeout") or not outcome.error_type:
        return outcome.status
    return f"{outcome.status} {outcome.error_type}"


# One colour per function, in the order functions first show up.
FUNCTION_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red")
OUTCOME_COLORS = {"success": "green", "timeout": "yellow"}
SHORT_ID_LENGTH = 8
# The poller tells its listener right after the END; this is only a bound.
OUTCOME_WAIT_SECONDS = 2.0
NAME_WIDTH_LIMIT = 32

_COLOR_SYSTEMS = {
    "standard": ColorSystem.STANDARD,
    "256": ColorSystem.EIGHT_BIT,
    "truecolor": ColorSystem.TRUECOLOR,
    "windows": ColorSystem.WINDOWS,
}


@dataclass(frozen=True)
class _Glyphs:
    start: str
    inside: str
    end: str
    dot: str


_BOX = _Glyphs("┌", "│", "└", "·")
_ASCII = _Glyphs("+", "|", "+", "-")


@dataclass(frozen=True)
class _Ending:
    function: str
    outcome: Outcome
    memory_mb: int


class Console:
    """Writes invocation blocks to a stream, one whole line at a time.

    `color` None colours the output when the stream is a terminal that shows
    colours (and NO_COLOR is unset); True forces colours, False never uses
    them. `json_lines` writes one JSON object per line instead.
    `await_outcomes` is for a console that is also the poller's outcome
    listener (`on_outcome`): each END then names the event source and mode.
    Safe to call from several threads at once.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        json_lines: bool = False,
        await_outcomes: bool = False,
    ) -> None:
        self._stream = stream or sys.stderr
        self._json = json_lines
        self._await_outcomes = await_outcomes
        self._colors = None if json_lines else _color_system(self._stream, color)
        self._glyphs = _glyphs_for(self._stream)
        self._lock = threading.Lock()
        self._function_colors: dict[str, str] = {}
        self._name_width = 0
        self._pending: dict[str, list[tuple[_Ending, threading.Timer]]] = {}
        self._closed_early: set[str] = set()

    def start(self, function: str, request_id: str, version: str) -> None:
        """Open an invocation's block with its START line."""
        if self._json:
            self._emit_json(
                "start", function=function, request_id=request_id, version=version
            )
            return
        text = f"START RequestId: {request_id} Version: {version}"
        self._write_block_line(function, request_id, self._glyphs.start, text)

    def line(self, function: str, request_id: str | None, text: str) -> None:
        """Show one line of the handler's output (request id None: during init)."""
        if self._json:
            self._emit_json("line", function=function, request_id=request_id, text=text)
            return
        # Lambda's runtimes write a multi-line message as one line whose
        # breaks are carriage returns, which a terminal would print over.
        for part in text.split("\r"):
            self._write_block_line(function, request_id, self._glyphs.inside, part)

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        """Close an invocation's block with END and REPORT (see `await_outcomes`)."""
        ending = _Ending(function, outcome, memory_mb)
        if not self._await_outcomes:
            self._write_ending(ending, None)
            return
        # The poller may drop an outcome (a message it lost hold of); the
        # block is closed without its event source rather than never.
        timer = threading.Timer(OUTCOME_WAIT_SECONDS, self._stop_waiting, [ending])
        timer.daemon = True
        with self._lock:
            self._pending.setdefault(outcome.request_id, []).append((ending, timer))
        timer.start()

    def on_outcome(self, request: wire.Request, outcome: Outcome) -> None:
        """The poller's listener: finish the block with its event source and mode.

        Only a console made with `await_outcomes=True` listens. An outcome
        without a block (the lab has no code for the function) gets a block
        of its own.
        """
        if not self._await_outcomes:
            return
        with self._lock:
            if outcome.request_id in self._closed_early:
                self._closed_early.discard(outcome.request_id)
                return
            waiting = self._pending.get(outcome.request_id, [])
            ending, timer = waiting.pop(0) if waiting else (None, None)
            if not waiting:
                self._pending.pop(outcome.request_id, None)
        if timer is not None:
            timer.cancel()
        if ending is None:
            memory_mb = request["function"]["memory_mb"]
            ending = _Ending(request["function"]["name"], outcome, memory_mb)
        self._write_ending(ending, request)

    def _stop_waiting(self, ending: _Ending) -> None:
        request_id = ending.outcome.request_id
        with self._lock:
            waiting = self._pending.get(request_id, [])
            still_pending = [pair for pair in waiting if pair[0] is not ending]
            if len(still_pending) == len(waiting):
                return
            if still_pending:
                self._pending[request_id] = still_pending
            else:
                self._pending.pop(request_id, None)
            self._closed_early.add(request_id)
        self._write_ending(ending, None)

    def note(self, text: str) -> None:
        """A line of the lab's own, not of any invocation."""
        if self._json:
            self._emit_json("note", text=text)
        else:
            self._write(f"mless: {text}")

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """Show a long step (deploying, attaching): its start, then its end and time."""
        started = time.monotonic()
        self._step(text, "started", None)
        try:
            yield
        except BaseException:
            self._step(text, "failed", time.monotonic() - started)
            raise
        self._step(text, "done", time.monotonic() - started)

    def _step(self, text: str, status: str, seconds: float | None) -> None:
        if self._json:
            rounded = None if seconds is None else round(seconds, 3)
            self._emit_json("step", text=text, status=status, seconds=rounded)
        elif seconds is None:
            self._write(f"mless: {text} ...")
        else:
            joined = "in" if status == "done" else "after"
            self._write(f"mless: {text}: {status} {joined} {seconds:.1f} s")

    def _write_ending(self, ending: _Ending, request: wire.Request | None) -> None:
        outcome = ending.outcome
        described = _described(request)
        if self._json:
            self._emit_json(
                "end",
                function=ending.function,
                **_end_fields(outcome, ending.memory_mb),
                **described,
            )
            return
        glyphs = self._glyphs
        said = [*described.values(), self._paint_outcome(outcome)]
        summary = f" {glyphs.dot} ".join(said)
        end_text = f"END RequestId: {outcome.request_id}  {summary}"
        report = report_line(outcome, ending.memory_mb).rstrip("\t")
        self._write_block_lines(
            ending.function,
            outcome.request_id,
            [
                (glyphs.inside, end_text),
                (glyphs.end, report.replace("\t", "  ")),
            ],
        )

    def _write_block_line(
        self, function: str, request_id: str | None, glyph: str, text: str
    ) -> None:
        self._write_block_lines(function, request_id, [(glyph, text)])

    def _write_block_lines(
        self, function: str, request_id: str | None, lines: list[tuple[str, str]]
    ) -> None:
        with self._lock:
            prefix = self._prefix(function, request_id)
            color = self._function_colors[function]
            rendered = [
                f"{prefix} {self._paint(glyph, color)} {text}" for glyph, text in lines
            ]
            self._write_locked("\n".join(rendered))

    def _prefix(self, function: str, request_id: str | None) -> str:
        if function not in self._function_colors:
            index = len(self._function_colors) % len(FUNCTION_COLORS)
            self._function_colors[function] = FUNCTION_COLORS[index]
        self._name_width = min(NAME_WIDTH_LIMIT, max(self._name_width, len(function)))
        short_id = (request_id or "init")[:SHORT_ID_LENGTH].ljust(SHORT_ID_LENGTH)
        name = function.ljust(self._name_width)
        color = self._function_colors[function]
        return f"{self._paint(name, color + ' bold')} {self._paint(short_id, 'dim')}"

    def _paint(self, text: str, style: str) -> str:
        if self._colors is None:
            return text
        return Style.parse(style).render(text, color_system=self._colors)

    def _paint_outcome(self, outcome: Outcome) -> str:
        return self._paint(
            outcome_text(outcome), OUTCOME_COLORS.get(outcome.status, "red")
        )

    def _emit_json(self, kind: str, **fields: Any) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        record = {"type": kind, "time": now, **fields}
        self._write(json.dumps(record, ensure_ascii=False))

    def _write(self, text: str) -> None:
        with self._lock:
            self._write_locked(text)

    def _write_locked(self, text: str) -> None:
        try:
            self._stream.write(text + "\n")
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            safe = text.encode(encoding, errors="replace").decode(encoding)
            self._stream.write(safe + "\n")
        self._stream.flush()


def _described(request: wire.Request | None) -> dict[str, str]:
    if request is None:
        return {}
    return {
        "event_source": event_source(request["event"]).value,
        "mode": request["mode"],
    }


def _end_fields(outcome: Outcome, memory_mb: int) -> dict[str, Any]:
    return {
        "request_id": outcome.request_id,
        "status": outcome.status,
        "error_type": outcome.error_type,
        "duration_ms": round(outcome.duration_ms, 3),
        "init_duration_ms": outcome.init_duration_ms,
        "memory_mb": memory_mb,
        "max_memory_mb": outcome.max_memory_mb,
        "report": report_line(outcome, memory_mb),
    }


def _color_system(stream: TextIO, color: bool | None) -> ColorSystem | None:
    """The colours the stream shows, or None for plain text."""
    if color is False:
        return None
    probe = RichConsole(file=stream, force_terminal=color or None)
    name = probe.color_system
    if color:
        return _COLOR_SYSTEMS.get(name or "standard", ColorSystem.STANDARD)
    if probe.no_color:  # the NO_COLOR variable is set
        return None
    return _COLOR_SYSTEMS.get(name) if name else None


def _glyphs_for(stream: TextIO) -> _Glyphs:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        (_BOX.start + _BOX.inside + _BOX.end + _BOX.dot).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return _ASCII
    return _BOX
