"""The invocations the lab ran, kept on this machine for `mless history` and replay.

Each invocation that reaches the lab is written to a JSON file of its own in
~/.mless/history (the MLESS_HOME variable moves ~/.mless): the event, the
context fields, the function, the outcome with its duration, when it ended
and which service sent the event. Credentials never are: the role's
credentials travel in the request and are left out, and so is any variable
named AWS_ACCESS*, AWS_SECRET*, AWS_SESSION* or AWS_SECURITY_TOKEN.

Files are named TIME_REQUESTID.json, so their names sort by time. When the
directory grows past its size cap, the oldest records are deleted.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from bridge.environments.process import Outcome
from bridge.errors import RecordNotFoundError
from bridge.event_source import event_source
from bridge.function_settings import FunctionSettings
from bridge.poller import OutcomeListener
from lambda_proxy import wire

logger = logging.getLogger(__name__)

RECORD_FORMAT_VERSION = 1
MLESS_HOME_VARIABLE = "MLESS_HOME"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Rotation deletes down to this share of the cap, so that it runs once in a
# while rather than on every record once the history is full.
ROTATE_TO_FRACTION = 0.8
AMBIGUOUS_IDS_SHOWN = 5

# Variable names that hold credentials, whoever set them.
_SECRET_PREFIXES = ("AWS_ACCESS", "AWS_SECRET", "AWS_SESSION", "AWS_SECURITY_TOKEN")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIX = ".json"


class RecordedOutcome(TypedDict, total=False):
    """How the invocation ended: a payload or an error, and its measurements."""

    status: str
    payload: str
    payload_base64: str
    error: dict[str, Any]
    duration_ms: float
    init_duration_ms: float
    max_memory_mb: int


class RecordedCode(TypedDict):
    """Where the lab found the function's code when it ran the invocation."""

    handler: str
    code_dir: str
    runtime: str
    interpreter: str | None
    layers: list[str]


class Record(TypedDict):
    """One invocation as the history keeps it."""

    v: int
    request_id: str
    time: str
    function: wire.FunctionIdentity
    event_source: str
    mode: str
    event: Any
    client_context: Any
    identity: Any
    trace_id: str | None
    tenant_id: str | None
    environment: dict[str, str]
    outcome: RecordedOutcome
    code: NotRequired[RecordedCode]


def mless_home() -> Path:
    """The directory mless keeps its own files in: $MLESS_HOME or ~/.mless."""
    configured = os.environ.get(MLESS_HOME_VARIABLE)
    return Path(configured) if configured else Path.home() / ".mless"


def without_credentials(variables: dict[str, str]) -> dict[str, str]:
    """The variables minus every one that names a credential."""
    return {
        name: value
        for name, value in variables.items()
        if not name.upper().startswith(_SECRET_PREFIXES)
    }


def build_record(
    request: wire.Request,
    outcome: Outcome,
    settings: FunctionSettings | None = None,
    now: datetime | None = None,
) -> Record:
    """Describe one invocation for the history, leaving its credentials out."""
    record: Record = {
        "v": RECORD_FORMAT_VERSION,
        "request_id": request["request_id"],
        "time": _timestamp(now or datetime.now(UTC)),
        "function": request["function"],
        "event_source": event_source(request["event"]).value,
        "mode": request["mode"],
        "event": request["event"],
        "client_context": request.get("client_context"),
        "identity": request.get("identity"),
        "trace_id": request.get("trace_id"),
        "tenant_id": request.get("tenant_id"),
        "environment": without_credentials(request["environment"]),
        "outcome": _recorded_outcome(outcome),
    }
    if settings is not None:
        record["code"] = {
            "handler": settings.handler,
            "code_dir": str(settings.code_dir.resolve()),
            "runtime": settings.runtime,
            "interpreter": settings.interpreter,
            "layers": [str(layer) for layer in settings.layers],
        }
    return record


def _timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC to the millisecond, as AWS writes times in events."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _recorded_outcome(outcome: Outcome) -> RecordedOutcome:
    recorded: RecordedOutcome = {
        "status": outcome.status,
        "duration_ms": round(outcome.duration_ms, 3),
        "max_memory_mb": outcome.max_memory_mb,
    }
    if outcome.payload is not None:
        recorded["payload"] = outcome.payload
    if outcome.raw_payload is not None:
        recorded["payload_base64"] = base64.b64encode(outcome.raw_payload).decode()
    if outcome.error is not None:
        recorded["error"] = outcome.error
    if outcome.init_duration_ms is not None:
        recorded["init_duration_ms"] = round(outcome.init_duration_ms, 3)
    return recorded


def recorded_outcome(record: Record) -> Outcome:
    """The outcome a record holds, as the lab's execution environments report one."""
    recorded = record["outcome"]
    return Outcome(
        request_id=record["request_id"],
        status=recorded.get("status", "success"),
        payload=recorded.get("payload"),
        raw_payload=_raw_payload(recorded),
        error=recorded.get("error"),
        duration_ms=recorded.get("duration_ms", 0.0),
        init_duration_ms=recorded.get("init_duration_ms"),
        max_memory_mb=recorded.get("max_memory_mb", 0),
    )


def _raw_payload(recorded: RecordedOutcome) -> bytes | None:
    encoded = recorded.get("payload_base64")
    return None if encoded is None else base64.b64decode(encoded)


class History:
    """The recorded invocations in one directory, kept under a size cap."""

    def __init__(
        self, directory: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.directory = directory or mless_home() / "history"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total_bytes: int | None = None

    def add(self, record: Record) -> Path:
        """Write one record, then delete the oldest ones past the size cap."""
        data = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        body = data.encode("utf-8")
        path = self.directory / _file_name(record)
        self._write(path, body)
        with self._lock:
            if self._total_bytes is None:
                self._total_bytes = sum(size for _, size in self._files_by_age())
            else:
                self._total_bytes += len(body)
            if self._total_bytes > self.max_bytes:
                target = int(self.max_bytes * ROTATE_TO_FRACTION)
                self._total_bytes = self._rotate(target, keep=path)
        return path

    def recent(self, limit: int = 20) -> list[Record]:
        """The latest records, newest first; unreadable files are skipped."""
        records: list[Record] = []
        for path in sorted(self._paths(), reverse=True):
            if len(records) >= limit:
                break
            try:
                records.append(_read(path))
            except RecordNotFoundError as exc:
                logger.warning("%s", exc)
        return records

    def load(self, reference: str) -> Record:
        """The record whose request id is `reference` or starts with it.

        A request id recorded more than once (Lambda retries an asynchronous
        invocation with the same id) gives the latest record.
        """
        wanted = _UNSAFE_IN_NAME.sub("_", reference.strip())
        if not wanted:
            raise RecordNotFoundError("Give the id of a recorded invocation.")
        matches: dict[str, Path] = {}
        for path in sorted(self._paths()):
            request_id = _request_id_of(path)
            if request_id.startswith(wanted):
                matches[request_id] = path
        if wanted in matches:
            return _read(matches[wanted])
        if not matches:
            raise RecordNotFoundError(
                f"No recorded invocation has an id starting with {reference!r}; "
                "`mless history` lists them."
            )
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:AMBIGUOUS_IDS_SHOWN])
            more = ", ..." if len(matches) > AMBIGUOUS_IDS_SHOWN else ""
            raise RecordNotFoundError(
                f"{reference!r} starts {len(matches)} recorded ids ({shown}{more}); "
                "give more of the id."
            )
        return _read(next(iter(matches.values())))

    def _write(self, path: Path, body: bytes) -> None:
        # The event may hold anything the caller sent, tokens included: only
        # the developer may read the history.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
            # A reader never sees half a record.
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _rotate(self, target_bytes: int, keep: Path) -> int:
        """Delete the oldest records down to `target_bytes`; return what is left."""
        files = self._files_by_age()
        total = sum(size for _, size in files)
        for path, size in files:
            if total <= target_bytes:
                break
            if path == keep:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # Another lab writing here rotated it first.
            total -= size
        return total

    def _files_by_age(self) -> list[tuple[Path, int]]:
        files = []
        for path in sorted(self._paths()):
            try:
                files.append((path, path.stat().st_size))
            except FileNotFoundError:
                continue
        return files

    def _paths(self) -> Iterable[Path]:
        if not self.directory.is_dir():
            return []
        return self.directory.glob(f"*_*{_SUFFIX}")


class HistoryRecorder:
    """Records each invocation the lab runs: pass it to the Lab as `on_outcome`.

    With the lab's function settings, each record also says where the code
    was, so that `replay` finds it without the lab's configuration.
    """

    def __init__(
        self, history: History, functions: Iterable[FunctionSettings] = ()
    ) -> None:
        self.history = history
        self._settings = {settings.name: settings for settings in functions}

    def __call__(self, request: wire.Request, outcome: Outcome) -> None:
        settings = self._settings.get(request["function"]["name"])
        try:
            self.history.add(build_record(request, outcome, settings))
        except OSError as exc:
            # The poller replies once its listener returns: a full disk must
            # not cost the caller its answer.
            logger.warning(
                "Request %s was not recorded in the history: %s",
                request["request_id"],
                exc,
            )


def notify_each(*listeners: OutcomeListener) -> OutcomeListener:
    """One outcome listener for the Lab that calls each of `listeners` in turn.

    A listener that raises is logged and the next one still runs, since the
    poller sends the reply only after its listener returns.
    """

    def notify(request: wire.Request, outcome: Outcome) -> None:
        for listener in listeners:
            try:
                listener(request, outcome)
            except Exception:
                logger.exception(
                    "An outcome listener failed on request %s",
                    request["request_id"],
                )

    return notify


def summary(record: Record) -> dict[str, Any]:
    """The fields `mless history` shows of one record (no event, no payload)."""
    outcome = record["outcome"]
    return {
        "request_id": record["request_id"],
        "time": record["time"],
        "function": record["function"]["name"],
        "event_source": record["event_source"],
        "mode": record["mode"],
        "status": outcome.get("status"),
        "error_type": outcome.get("error", {}).get("errorType"),
        "duration_ms": outcome.get("duration_ms"),
    }


def summary_line(record: Record) -> str:
    """One line of `mless history`: time, id, function, source, mode, outcome."""
    fields = summary(record)
    when = fields["time"].replace("T", " ")[:19]
    status = fields["status"] or "?"
    if fields["error_type"] and status != "timeout":
        status = f"{status} {fields['error_type']}"
    duration = f"{fields['duration_ms'] or 0:.0f} ms"
    return "  ".join(
        [
            when,
            fields["request_id"],
            fields["function"],
            fields["event_source"],
            fields["mode"],
            status,
            duration,
        ]
    )


def _file_name(record: Record) -> str:
    stamp = record["time"].replace("-", "").replace(":", "")
    request_id = _UNSAFE_IN_NAME.sub("_", record["request_id"])[:128]
    return f"{stamp}_{request_id}{_SUFFIX}"


def _request_id_of(path: Path) -> str:
    return path.name[: -len(_SUFFIX)].split("_", 1)[1]


def _read(path: Path) -> Record:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RecordNotFoundError(
            f"The record {path.name} was deleted while it was read."
        ) from exc
    except (OSError, ValueError) as exc:
        raise RecordNotFoundError(f"The record {path} cannot be read: {exc}") from exc
    if not isinstance(record, dict) or record.get("v") != RECORD_FORMAT_VERSION:
        raise RecordNotFoundError(
            f"The record {path} is not in the history's format "
            f"(version {RECORD_FORMAT_VERSION})."
        )
    return record  # type: ignore[return-value]
