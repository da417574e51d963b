"""Replay: run a recorded event again against the current code, on this machine.

The event runs in a new execution environment of the function's kind (Python
or Node.js) with the recorded context fields: request id, function ARN and
configuration, client context, identity, trace id, tenant id, and the
function's own variables. Only the deadline is new: the function's timeout,
counted from the end of init as Lambda counts it.

No AWS is needed, and none is reached by accident: the history never kept
the role's credentials, so the handler gets none unless the caller passes
some, and the SDKs are kept from falling back on the developer's own
profile or on an instance's metadata service.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from bridge.clock import now_ms
from bridge.environments.pool import InvocationLog, Pool
from bridge.environments.process import Invocation, Outcome
from bridge.environments.variables import Platform
from bridge.errors import ConfigurationError
from bridge.function_settings import FunctionSettings, current_python_runtime
from bridge.history import Record, recorded_outcome
from lambda_proxy import wire

# Without credentials in the environment, the AWS SDKs look for a profile in
# the user's home and then ask the metadata service; these variables close
# both doors, so a replay without credentials fails fast instead of running
# as the developer.
NO_FALLBACK_CREDENTIALS = {
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_NO_CREDENTIALS: wire.Credentials = {
    "access_key_id": "",
    "secret_access_key": "",
    "session_token": None,
}


@dataclass(frozen=True)
class ReplayResult:
    """A recorded invocation and how it ended when run again."""

    record: Record
    outcome: Outcome

    @property
    def payload(self) -> bytes:
        """What a caller would receive: the handler's result or its error."""
        if self.outcome.payload is not None:
            return self.outcome.payload.encode("utf-8")
        if self.outcome.raw_payload is not None:
            return self.outcome.raw_payload
        return json.dumps(self.outcome.error or {}, ensure_ascii=False).encode()

    @property
    def function_error(self) -> bool:
        """Whether the caller would see a function error."""
        return self.outcome.error is not None

    @property
    def same_as_recorded(self) -> bool:
        """Whether the result matches the recorded one (error traces aside)."""
        return _result_of(self.outcome) == _result_of(recorded_outcome(self.record))


def settings_for(
    record: Record,
    *,
    handler: str | None = None,
    code_dir: Path | None = None,
    runtime: str | None = None,
) -> FunctionSettings:
    """The settings to replay a record with: as recorded, unless overridden.

    Raises ConfigurationError when the record does not say where the code is
    (the lab that ran it had no settings for it) and no override does.
    """
    name = record["function"]["name"]
    code = record.get("code")
    if code is None:
        if handler is None or code_dir is None:
            raise ConfigurationError(
                f"The record of request {record['request_id']} does not say where "
                f"the code of {name!r} is; name its handler and code directory."
            )
        code = {
            "handler": handler,
            "code_dir": str(code_dir),
            "runtime": runtime or current_python_runtime(),
            "interpreter": None,
            "layers": [],
        }
    return FunctionSettings(
        name=name,
        handler=handler or code["handler"],
        # The execution environment starts inside its code directory, where
        # a relative path would no longer lead there.
        code_dir=(code_dir or Path(code["code_dir"])).resolve(),
        runtime=runtime or code["runtime"],
        interpreter=code["interpreter"],
        layers=tuple(Path(layer) for layer in code["layers"]),
        concurrency=1,
    )


def replay(
    record: Record,
    log: InvocationLog,
    *,
    settings: FunctionSettings | None = None,
    credentials: wire.Credentials | None = None,
    endpoint_url: str | None = None,
) -> ReplayResult:
    """Run the recorded event again in a new environment and return how it ended.

    `settings` default to those the record names (see `settings_for`).
    `credentials`, when given, are handed to the handler as the role's would
    be; `endpoint_url` points its SDK at another AWS endpoint, such as the
    local cloud.
    """
    settings = settings or settings_for(record)
    variables = dict(record["environment"])
    if credentials is None:
        variables.update(NO_FALLBACK_CREDENTIALS)
    pool = Pool(settings, log, Platform(endpoint_url=endpoint_url))
    try:
        outcome = pool.invoke(
            record["function"],
            variables,
            credentials or _NO_CREDENTIALS,
            _invocation(record),
        )
    except OSError as exc:
        raise ConfigurationError(
            f"Could not start an execution environment for {settings.name!r} "
            f"({settings.runtime}): {exc}"
        ) from exc
    finally:
        pool.close()
    return ReplayResult(record, outcome)


def save_fixture(record: Record, path: Path) -> None:
    """Write the recorded event to `path` as a JSON test fixture."""
    text = json.dumps(record["event"], indent=2, ensure_ascii=False) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"Could not write the event to {path}: {exc.strerror or exc}"
        ) from exc


def _invocation(record: Record) -> Invocation:
    function = record["function"]
    return Invocation(
        request_id=record["request_id"],
        invoked_function_arn=function["invoked_arn"],
        deadline_ms=now_ms() + function["timeout_ms"],
        timeout_ms=function["timeout_ms"],
        event_json=json.dumps(record["event"], ensure_ascii=False),
        client_context_json=_json_or_none(record.get("client_context")),
        identity_json=_json_or_none(record.get("identity")),
        trace_id=record.get("trace_id"),
        tenant_id=record.get("tenant_id"),
        deadline_after_init=True,
    )


def _json_or_none(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def _result_of(outcome: Outcome) -> tuple[object, ...]:
    error = outcome.error or {}
    return (
        outcome.status,
        outcome.payload,
        outcome.raw_payload,
        error.get("errorType"),
        error.get("errorMessage"),
    )
