"""The debuggers an execution environment can run under, and what the lab says of them.

- debugpy (VS Code): the environment listens on host:port and, with `wait`,
  waits before init for the IDE to attach.
- pydevd (PyCharm, PyDev): the environment connects to the IDE's debug server
  at host:port before init and, with `wait`, lets init run only once the IDE
  has sent its breakpoints. PyCharm's own build, `pydevd_pycharm` (whose
  version should match the IDE's), is used when the function's interpreter
  has it; otherwise pydevd.
- Node's inspector: `--inspect` on host:port, or `--inspect-wait` with `wait`.

The Python debuggers start in the -c program that runs the worker (see
interpreters.python_command); Node's options go in NODE_OPTIONS. Either way
the environment runs the developer's own files, so breakpoints set in the IDE
hit without any path mapping.

A debugger that listens (debugpy, the inspector) holds its port for one
environment at a time, so a function debugged that way runs one invocation at
a time. The deadline holds while the handler is paused: the invocation ends
with Sandbox.Timedout at its deadline, as in Lambda; `mless attach --debug`
raises the function's timeout for a debugging session. API Gateway does not
wait that long, hence `api_gateway_warning`.
"""

from __future__ import annotations

import functools
import ipaddress
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.environments import interpreters
from bridge.errors import ConfigurationError
from bridge.function_settings import DebuggerKind, DebuggerSettings, FunctionSettings

# The distribution the lab lends to an interpreter that lacks the debugger.
PYTHON_DEBUGGER_DISTRIBUTIONS = {
    DebuggerKind.DEBUGPY: "debugpy",
    DebuggerKind.PYDEVD: "pydevd",
}

# API Gateway answers 504 to its client after the integration timeout: 29 s by
# default for REST APIs (Regional and private REST APIs may raise it through
# a quota increase, since June 2024), at most 30 s for HTTP APIs.
REST_API_TIMEOUT_SECONDS = 29
HTTP_API_TIMEOUT_SECONDS = 30

_QUIET = "PYDEVD_DISABLE_FILE_VALIDATION"

_DESCRIPTIONS = {
    DebuggerKind.DEBUGPY: "debugpy, for VS Code",
    DebuggerKind.PYDEVD: "pydevd, for PyCharm or PyDev",
    DebuggerKind.NODE_INSPECT: "Node's inspector",
}


def check_debugger(settings: FunctionSettings) -> list[str]:
    """Refuse a debugger that cannot debug the function's runtime; return warnings."""
    debugger = settings.debugger
    if debugger is None:
        return []
    for_node = debugger.kind is DebuggerKind.NODE_INSPECT
    if for_node == settings.is_python:
        wanted = "python" if for_node else "nodejs"
        raise ConfigurationError(
            f"Function {settings.name!r} runs {settings.runtime}, which the "
            f"{debugger.kind.value} debugger cannot debug; it debugs {wanted} "
            "functions only."
        )
    if listens(debugger) and not _is_loopback(debugger.host):
        return [
            f"The debugger of function {settings.name} listens on "
            f"{debugger.host}:{debugger.port}, which other machines can reach: "
            "whoever connects can run code as you. Use 127.0.0.1 unless that "
            "is what you want."
        ]
    return []


def listens(debugger: DebuggerSettings) -> bool:
    """Whether the environment listens for the IDE (and so holds a port)."""
    return debugger.kind is not DebuggerKind.PYDEVD


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- Python -----------------------------------------------------------------


def python_prelude(debugger: DebuggerSettings) -> list[str]:
    """Lines of Python that start the debugger before the worker runs init.

    They run under the function's interpreter (any Python 3), with `sys` and
    `runpy` imported. A debugger that cannot start is reported in one line of
    the environment's output, and the function runs without it.
    """
    lines = [
        "import os",
        # Frozen modules of the standard library cannot hold breakpoints without
        # -X frozen_modules=off, which a -c program cannot set for itself; the
        # developer's files are never frozen, so the warning is only noise.
        # The debugger reads the variable once, on import; the handler must
        # not see it.
        f"quiet = {_QUIET!r} not in os.environ",
        f"os.environ.setdefault({_QUIET!r}, '1')",
        "try:",
    ]
    if debugger.kind is DebuggerKind.DEBUGPY:
        lines += _debugpy_lines(debugger)
    else:
        lines += _pydevd_lines(debugger)
    before = f"mless: {_address(debugger)} ({debugger.kind.value}): "
    after = "; this execution environment runs without a debugger.\n"
    lines += [
        "except Exception as exc:",
        f"    sys.stderr.write({before!r} + repr(exc) + {after!r})",
    ]
    if debugger.kind is DebuggerKind.DEBUGPY and debugger.wait:
        lines += ["else:", "    debugpy.wait_for_client()"]
    lines += ["if quiet:", f"    del os.environ[{_QUIET!r}]"]
    return lines


def _debugpy_lines(debugger: DebuggerSettings) -> list[str]:
    return [
        "    import debugpy",
        f"    debugpy.listen(({debugger.host!r}, {debugger.port!r}))",
    ]


def _pydevd_lines(debugger: DebuggerSettings) -> list[str]:
    options = "suspend=False, trace_only_current_thread=False"
    if not debugger.wait:
        options += ", wait_for_ready_to_run=False"
    return [
        "    try:",
        "        import pydevd_pycharm as pydevd",
        "    except ImportError:",
        "        import pydevd",
        f"    pydevd.settrace({debugger.host!r}, port={debugger.port!r}, {options})",
    ]


def lent_debugger(
    debugger: DebuggerSettings, interpreter: interpreters.Interpreter
) -> Path | None:
    """The lab's copy of the debugger, for an interpreter that has none of its own."""
    distribution = PYTHON_DEBUGGER_DISTRIBUTIONS[debugger.kind]
    own = interpreter.modules
    if distribution in own or (distribution == "pydevd" and "pydevd_pycharm" in own):
        return None
    return interpreters.lab_packages(distribution)


def _address(debugger: DebuggerSettings) -> str:
    verb = "connecting to" if debugger.kind is DebuggerKind.PYDEVD else "listening on"
    return f"{verb} {debugger.host}:{debugger.port} failed"


# --- Node.js ----------------------------------------------------------------


def node_variables(
    debugger: DebuggerSettings, environment: Mapping[str, str]
) -> dict[str, str]:
    """NODE_OPTIONS with the inspector added to what the function sets itself."""
    option = "--inspect"
    if debugger.wait:
        option = "--inspect-wait" if _node_can_wait() else "--inspect-brk"
    inspect = f"{option}={debugger.host}:{debugger.port}"
    current = environment.get("NODE_OPTIONS", "")
    return {"NODE_OPTIONS": f"{current} {inspect}".strip()}


@functools.cache
def _node_can_wait() -> bool:
    """Whether the lab's node has --inspect-wait (Node.js 20.15, 22.2 and later).

    Older ones get --inspect-brk, which also stops at the worker's first line.
    """
    try:
        answer = subprocess.run(
            ["node", "-p", "process.allowedNodeEnvironmentFlags.has('--inspect-wait')"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.stdout.strip() == "true"


# --- What the lab says ------------------------------------------------------


def announcement(debugger: DebuggerSettings, deadline_ms: int) -> str:
    """The line saying where a new environment meets its debugger, and until when."""
    where = f"{debugger.host}:{debugger.port}"
    what = _DESCRIPTIONS[debugger.kind]
    if debugger.kind is DebuggerKind.PYDEVD:
        doing = f"connecting to the debug server at {where} ({what}) before init"
    elif debugger.wait:
        doing = f"waiting for a debugger to attach to {where} ({what}) before init"
    else:
        doing = f"{what} listens on {where}; attach any time"
    seconds = max(0, round(deadline_ms / 1000 - time.time()))
    clock = time.strftime("%H:%M:%S", time.localtime(deadline_ms / 1000))
    return (
        f"mless: {doing}. This invocation's deadline is {clock} ({seconds} s from now)."
    )


@dataclass(frozen=True)
class ApiGatewaySource:
    """The API Gateway API an event came through."""

    kind: str  # "REST API", "HTTP API" or "WebSocket API"
    api_id: str

    @property
    def timeout_seconds(self) -> int:
        if self.kind == "HTTP API":
            return HTTP_API_TIMEOUT_SECONDS
        return REST_API_TIMEOUT_SECONDS


def api_gateway_source(event: Any) -> ApiGatewaySource | None:
    """The API an event came through, or None if API Gateway did not send it."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    if not isinstance(context, dict) or "apiId" not in context:
        return None
    return _source(event, context)


def _source(event: dict[str, Any], context: dict[str, Any]) -> ApiGatewaySource | None:
    # Function URLs send HTTP API's event shape, without its 30 s limit.
    if ".lambda-url." in str(context.get("domainName", "")):
        return None
    api_id = str(context["apiId"])
    # HTTP APIs mark their payload with its format version, REST APIs do not.
    if event.get("version") in ("1.0", "2.0") or "http" in context:
        return ApiGatewaySource("HTTP API", api_id)
    if "httpMethod" in context:
        return ApiGatewaySource("REST API", api_id)
    if "connectionId" in context:
        return ApiGatewaySource("WebSocket API", api_id)
    return None


def api_gateway_warning(
    function: str, event: Any, timeout_ms: int, *, debugged: bool
) -> str | None:
    """Why a caller behind API Gateway may give up before the function ends.

    None when the event did not come through API Gateway, or when neither a
    debugger nor the function's timeout can outlast the API's limit.
    """
    if not debugged and timeout_ms <= REST_API_TIMEOUT_SECONDS * 1000:
        return None
    source = api_gateway_source(event)
    if source is None:
        return None
    if not debugged and timeout_ms <= source.timeout_seconds * 1000:
        return None
    if source.kind == "HTTP API":
        limit = f"{HTTP_API_TIMEOUT_SECONDS} s at most for HTTP APIs"
    else:
        limit = (
            f"{REST_API_TIMEOUT_SECONDS} s by default; Regional and private REST "
            "APIs can raise it with a quota increase"
        )
    return (
        f"Function {function} is invoked through API Gateway ({source.kind} "
        f"{source.api_id}): its caller gets a 504 once the API's integration "
        f"timeout passes ({limit}), whatever the function's own timeout "
        f"({timeout_ms / 1000:g} s) and however long a debugger holds it; a "
        "result that comes later is dropped without notice."
    )
