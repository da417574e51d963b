"""The Python execution environment: one process that imports one handler once.

The pool starts this file by path, as docs/execution-environment-protocol.md
describes:

    python python_worker.py CONTROL_IN_FD CONTROL_OUT_FD SENTINEL [LAYER_DIR ...]

and it behaves as AWS's Python runtime interface client does in Lambda:

1. Init: sys.path, the output streams and logging are set up as in Lambda, then
   the handler named by `_HANDLER` is imported. The pool gets `ready` or
   `init_error`, then the sentinel that ends init's output; after
   `init_error` the process exits with status 1.
2. Invocations, one at a time: each `invoke` message applies its environment
   and trace id, parses the event, calls the handler and serializes the
   result as the runtime does. Output is flushed and the sentinel written
   before the result line, so when the pool reads a result it already holds
   everything the handler wrote.
3. End: end of file on the control pipe exits with status 0. SystemExit from
   the handler is not caught, so sys.exit() ends the process, as in Lambda.

It runs under the function's own interpreter (Python 3.9 and later), uses the
standard library only and imports nothing from mless.
"""

from __future__ import annotations

import decimal
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import resource
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TextIO

# Init duration counts from here: the interpreter's own start is not measured.
_STARTED_AT = time.perf_counter()

Handler = Callable[[Any, Any], Any]

WORKER_DIR = os.path.dirname(os.path.abspath(__file__))
_WORKER_FILE = os.path.realpath(__file__)
_WORKER_DIR_REAL = os.path.dirname(_WORKER_FILE)

# The runtimes whose serializer keeps non-ASCII characters as they are.
_UNESCAPED_UNICODE_RUNTIMES = {f"AWS_Lambda_python3.{minor}" for minor in range(12, 16)}

TEXT_LOG_FORMAT = (
    "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
)
_LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_JSON_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_NO_BREAK_SPACE = "\u00a0"
_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))


# Where Lambda's Python runtime keeps the exception it reports faults with.
RUNTIME_FAULT_MODULE = "awslambdaric.lambda_runtime_exception"


class FaultError(Exception):
    """A failure the runtime reports under one of Lambda's own error types.

    Its constructor and attributes are those of the runtime's FaultException,
    so code that raises the runtime's fault (as the mless proxy does, to pass
    on a handler's stack trace) behaves the same in the lab.
    """

    def __init__(
        self, exception_type: str, msg: str, trace: list[str] | None = None
    ) -> None:
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


class ProtocolError(Exception):
    """The pool sent a message this environment does not understand."""


# --- Init -------------------------------------------------------------------


def arrange_sys_path(task_root: str, layer_dirs: list[str]) -> None:
    """Search the code, then the layers, as Lambda does; hide mless's own files."""
    sys.path[:] = [p for p in sys.path if os.path.realpath(p) != _WORKER_DIR_REAL]
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    # Lambda extracts every layer into one /opt, a later layer replacing the
    # files of an earlier one, so later layers are searched first here.
    newest_first = list(reversed(layer_dirs))
    site_packages = [
        os.path.join(layer, "python", "lib", version, "site-packages")
        for layer in newest_first
    ]
    plain = [os.path.join(layer, "python") for layer in newest_first]
    sys.path[0:0] = [task_root, *site_packages, *plain]


def load_handler(handler_name: str) -> Handler:
    """Import the module that `_HANDLER` names and return its handler."""
    module_name, function_name = _split_handler_name(handler_name)
    module = _import_handler_module(module_name)
    try:
        handler: Handler = getattr(module, function_name)
    except AttributeError as exc:
        raise FaultError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        ) from exc
    return handler


def _split_handler_name(handler_name: str) -> tuple[str, str]:
    try:
        module_name, function_name = handler_name.rsplit(".", 1)
    except ValueError as exc:
        # Lambda's message quotes the unpacking error itself.
        raise FaultError(
            "Runtime.MalformedHandlerName", f"Bad handler '{handler_name}': {exc}"
        ) from exc
    return module_name, function_name


def _import_handler_module(module_name: str) -> ModuleType:
    # Like Lambda, check the name as written, before "/" becomes ".".
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise FaultError(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        return importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise FaultError(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
        ) from exc
    except SyntaxError as exc:
        location = f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}'
        raise FaultError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [location],
        ) from exc


def provide_fault_module() -> None:
    """Offer the runtime's fault exception under the module name Lambda's runtime uses.

    In Lambda the runtime's own package is importable by the function; in the
    lab it is usually not installed, so this environment's FaultError stands
    in for it. An installed package is left alone.
    """
    package = RUNTIME_FAULT_MODULE.split(".")[0]
    if RUNTIME_FAULT_MODULE in sys.modules or importlib.util.find_spec(package):
        return
    module = ModuleType(RUNTIME_FAULT_MODULE)
    module.FaultException = FaultError  # type: ignore[attr-defined]
    sys.modules[RUNTIME_FAULT_MODULE] = module


def _fault_classes() -> tuple[type[BaseException], ...]:
    module = sys.modules.get(RUNTIME_FAULT_MODULE)
    runtime_fault = getattr(module, "FaultException", FaultError)
    return (FaultError, runtime_fault)


def load_context_module() -> ModuleType:
    """Load context.py, which sits beside this file, without touching sys.path."""
    path = os.path.join(WORKER_DIR, "context.py")
    spec = importlib.util.spec_from_file_location("_mless_lambda_context", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot load the Lambda context from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- Output and logging -----------------------------------------------------


class FlushingStream:
    """A text stream that flushes after every write, as Lambda's runtime does.

    stdout and stderr share one pipe; flushing each write keeps their lines in
    the order the handler wrote them.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        self._stream.flush()
        return written

    def writelines(self, lines: Any) -> None:
        self._stream.writelines(lines)
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def make_output_unbuffered() -> None:
    """Replace sys.stdout and sys.stderr with UTF-8 streams flushed on write."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(encoding="utf-8", errors="strict")
        setattr(sys, name, FlushingStream(stream))


class CurrentInvocation:
    """The request id and tenant id that log records are stamped with."""

    def __init__(self) -> None:
        self.request_id = ""
        self.tenant_id: str | None = None


class _InvocationFilter(logging.Filter):
    def __init__(self, invocation: CurrentInvocation) -> None:
        super().__init__()
        self._invocation = invocation

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self._invocation.request_id
        record.tenant_id = self._invocation.tenant_id
        return True


class _LogOutputHandler(logging.Handler):
    """Writes each record to stdout, where Lambda's runtime writes them."""

    def emit(self, record: logging.LogRecord) -> None:
        # No try/except: Lambda's handler lets formatting errors reach the
        # caller, so a bad logging call fails here as it does there.
        text = self.format(record)
        # A record with a traceback lacks the final newline; in CloudWatch it
        # is still one event, so end it here to keep the next line apart.
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# Attributes every LogRecord has; the others came through `extra`.
_RECORD_ATTRIBUTES = frozenset(
    (
        "name msg args levelname levelno pathname filename module exc_info "
        "exc_text stack_info lineno funcName created msecs relativeCreated "
        "thread threadName processName process aws_request_id tenant_id"
    ).split()
)


class JsonLogFormatter(logging.Formatter):
    """Formats a record as the JSON object Lambda's JSON log format writes."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        exc_info = record.exc_info
        structured = isinstance(record.msg, dict) and not record.args
        fields: dict[str, Any] = {
            "timestamp": time.strftime(_JSON_TIME_FORMAT, time.gmtime(record.created)),
            "level": logging.getLevelName(level),
            "message": record.msg if structured else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info and exc_info[0] else None,
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": (
                f"{record.pathname}:{record.funcName}:{record.lineno}"
                if exc_info
                else None
            ),
            "tenantId": getattr(record, "tenant_id", None),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in fields:
                fields[name] = value
        present = {name: value for name, value in fields.items() if value is not None}
        return json.dumps(present, ensure_ascii=False, default=str) + "\n"


def install_logging(
    invocation: CurrentInvocation, log_format: str, log_level: str
) -> None:
    """Give the root logger Lambda's handler, format and, if configured, level."""
    # Lambda's runtime switches every formatter to UTC, the user's too.
    logging.Formatter.converter = time.gmtime
    handler = _LogOutputHandler()
    if log_format.upper() == "JSON":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_LOG_FORMAT, _LOG_DATE_FORMAT))
    handler.addFilter(_InvocationFilter(invocation))
    root = logging.getLogger()
    level = _root_level(log_level)
    if level is not None:
        root.setLevel(level)
    root.addHandler(handler)


def _root_level(log_level: str) -> int | None:
    """Map AWS_LAMBDA_LOG_LEVEL to a logging level; None leaves the default."""
    name = "DEBUG" if log_level == "TRACE" else log_level.upper()
    level = logging.getLevelName(name) if name else None
    return level if isinstance(level, int) else None


class Output:
    """The shared stdout/stderr pipe, which each invocation ends with the sentinel."""

    def __init__(self, sentinel: str) -> None:
        self._marker = b"\x1e" + sentinel.encode("ascii") + b"\x1e"

    def end(self) -> None:
        """Flush what the handler wrote, then mark the end of it."""
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass  # a stream the handler closed has nothing left to flush
        marker = self._marker
        while marker:
            marker = marker[os.write(1, marker) :]


# --- Errors -----------------------------------------------------------------


def error_payload(
    error_type: str, message: str, stack_trace: list[str], request_id: str
) -> dict[str, Any]:
    """Build Lambda's error payload; `request_id` is "" for init errors."""
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack_trace,
    }


def exception_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """Build the error payload of an exception, without this file's own frames."""
    if isinstance(exc, _fault_classes()):
        fault: Any = exc
        return error_payload(
            fault.exception_type or "", fault.msg or "", fault.trace or [], request_id
        )
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and os.path.realpath(frames[0].filename) == _WORKER_FILE:
        frames.pop(0)
    # Fresh frame summaries carry no column, so no "^^^" lines on Python 3.11+,
    # matching the runtime's stack traces.
    bare = [
        traceback.FrameSummary(
            f.filename, f.lineno, f.name, lookup_line=False, line=f.line
        )
        for f in frames
    ]
    return error_payload(
        type(exc).__name__, str(exc), traceback.format_list(bare), request_id
    )


def log_error(error: dict[str, Any], log_format: str) -> None:
    """Write an error to the log as Lambda's runtime does in the given format."""
    if log_format.upper() == "JSON":
        timestamp = time.strftime(_JSON_TIME_FORMAT, time.gmtime())
        record = {"timestamp": timestamp, "level": "ERROR", **error}
        sys.stderr.write(to_json(record) + "\n")
    else:
        # In Lambda the whole error is one log event of newline-separated
        # lines; on the shared pipe the lines simply follow one another.
        sys.stderr.write("\n".join(_error_log_lines(error)) + "\n")


def _error_log_lines(error: dict[str, Any]) -> list[str]:
    error_type, message = error["errorType"], error["errorMessage"]
    if error_type and message:
        summary = f"[ERROR] {error_type}: {message}"
    else:
        summary = " ".join(part for part in ("[ERROR]", error_type, message) if part)
    lines = [summary, "Traceback (most recent call last):"]
    for entry in error["stackTrace"]:
        lines.extend(_keep_indent(line) for line in entry.splitlines() or [""])
    return lines


def _keep_indent(line: str) -> str:
    # Lambda's runtime indents trace lines with no-break spaces; the lab shows
    # the same characters.
    body = line.lstrip(" ")
    return _NO_BREAK_SPACE * (len(line) - len(body)) + body


# --- Marshalling ------------------------------------------------------------


def to_json(value: Any) -> str:
    """Serialize a result with the rules of simplejson, the runtime's encoder.

    Decimals become numbers with their own digits (NaN stays NaN), nested bytes
    are decoded as UTF-8 text and named tuples become objects. Non-ASCII text
    is escaped except on the runtimes that keep it.
    """
    encoder = _SimplejsonRules()
    text = json.dumps(
        encoder.prepare(value),
        ensure_ascii=os.environ.get("AWS_EXECUTION_ENV")
        not in _UNESCAPED_UNICODE_RUNTIMES,
    )
    return encoder.restore_numbers(text)


class _SimplejsonRules:
    """Turns a result into data the standard json module writes as simplejson would.

    The standard encoder cannot write a raw number, so each finite Decimal is
    first replaced by a placeholder string that no result can contain (it has
    a random token), and the placeholder is swapped for the digits afterwards.
    """

    def __init__(self) -> None:
        self._token = f"mless-number-{secrets.token_hex(8)}-"
        self._numbers: list[str] = []
        self._open: set[int] = set()

    def prepare(self, value: Any) -> Any:
        """Return `value` as plain JSON data, or raise as simplejson would."""
        kind = type(value)
        if kind in _JSON_SCALARS:
            return value
        # Plain lists and dicts have no _asdict, so they skip the checks below.
        if kind is list:
            return self._inside(value, self._prepare_items, value)
        if kind is dict:
            return self._inside(value, self._prepare_dict, value)
        return self._prepare_other(value)

    def _prepare_other(self, value: Any) -> Any:
        if value is None or isinstance(value, (str, int, float)):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8")
        as_dict = getattr(value, "_asdict", None)
        if callable(as_dict):
            fields = as_dict()
            if not isinstance(fields, dict):
                raise TypeError(
                    f"_asdict() must return a dict, not {type(fields).__name__}"
                )
            return self._inside(value, self._prepare_dict, fields)
        if isinstance(value, decimal.Decimal):
            return self._number(value)
        if isinstance(value, (list, tuple)):
            return self._inside(value, self._prepare_items, value)
        if isinstance(value, dict):
            return self._inside(value, self._prepare_dict, value)
        raise TypeError(
            f"Object of type {type(value).__name__} is not JSON serializable"
        )

    def restore_numbers(self, text: str) -> str:
        """Put each Decimal's digits back in the JSON text of prepared data."""
        if not self._numbers:
            return text
        pattern = re.compile(f'"{re.escape(self._token)}([0-9]+)"')
        return pattern.sub(lambda match: self._numbers[int(match[1])], text)

    def _prepare_items(self, items: list[Any] | tuple[Any, ...]) -> list[Any]:
        return [self.prepare(item) for item in items]

    def _prepare_dict(self, value: dict[Any, Any]) -> dict[Any, Any]:
        return {self._key(key): self.prepare(item) for key, item in value.items()}

    def _key(self, key: Any) -> Any:
        if isinstance(key, bytes):
            return key.decode("utf-8")
        if key is None or isinstance(key, (str, int, float)):
            return key
        raise TypeError(
            f"keys must be str, int, float, bool or None, not {type(key).__name__}"
        )

    def _number(self, value: decimal.Decimal) -> Any:
        if value.is_nan():
            return float("nan")
        self._numbers.append(str(value))
        return f"{self._token}{len(self._numbers) - 1}"

    def _inside(
        self, container: Any, prepare: Callable[[Any], Any], content: Any
    ) -> Any:
        """Prepare `content`, the data of `container`, refusing to loop."""
        if id(container) in self._open:
            raise ValueError("Circular reference detected")
        self._open.add(id(container))
        try:
            return prepare(content)
        finally:
            self._open.discard(id(container))


def marshal_result(value: Any) -> tuple[dict[str, Any], bytes]:
    """Serialize a handler's return value: the result message's fields and body.

    bytes pass through raw, as in Lambda; anything else becomes JSON text.
    """
    if isinstance(value, bytes):
        return {"payload_is_bytes": True}, value
    try:
        text = to_json(value)
    except Exception as exc:
        raise FaultError(
            "Runtime.MarshalError", f"Unable to marshal response: {exc}"
        ) from exc
    # A lone surrogate can stand only inside a JSON string, where
    # backslashreplace writes the escape that JSON reads back as it.
    return {}, text.encode("utf-8", "backslashreplace")


def parse_event(event_json: bytes) -> Any:
    """Parse the event as the runtime does; bad JSON is Runtime.UnmarshalError."""
    try:
        return json.loads(event_json.decode("utf-8"))
    except Exception as exc:
        raise FaultError(
            "Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}"
        ) from exc


# --- Invocations ------------------------------------------------------------


class ControlChannel:
    """The two control pipes to the pool: a JSON line per message, then its body.

    A message with `body_bytes` is followed by that many raw bytes: the event
    going in, the payload coming out. Raw, a 5 MB payload is neither escaped
    into a JSON string nor base64-encoded on its way.
    """

    def __init__(self, in_fd: int, out_fd: int) -> None:
        # Processes the handler starts must not hold the control pipes open,
        # or the pool would never see this process's end of file.
        os.set_inheritable(in_fd, False)
        os.set_inheritable(out_fd, False)
        self._in = os.fdopen(in_fd, "rb")
        self._out = os.fdopen(out_fd, "wb")

    def messages(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        """Yield the pool's messages and their bodies until it closes the pipe."""
        for line in self._in:
            if line.strip():
                message: dict[str, Any] = json.loads(line)
                size = int(message.get("body_bytes", 0))
                yield message, self._in.read(size) if size > 0 else b""

    def send(self, message: dict[str, Any], body: bytes = b"") -> None:
        if body:
            message = {**message, "body_bytes": len(body)}
        self._out.write(json.dumps(message).encode("ascii") + b"\n")
        self._out.write(body)
        self._out.flush()


class Runtime:
    """Runs the imported handler for one invocation after another, as Lambda's does."""

    def __init__(
        self,
        handler: Handler,
        context_module: ModuleType,
        invocation: CurrentInvocation,
        log_format: str,
    ) -> None:
        self._handler = handler
        self._context_module = context_module
        self._invocation = invocation
        self._log_format = log_format

    def invoke(
        self, message: dict[str, Any], event: bytes
    ) -> tuple[dict[str, Any], bytes]:
        """Run one invocation; return its result message and the payload."""
        request_id: str = message["request_id"]
        self._invocation.request_id = request_id
        self._invocation.tenant_id = message.get("tenant_id")
        apply_environment(message.get("environment") or {}, message.get("trace_id"))
        payload = b""
        try:
            outcome, payload = self._run_handler(message, event)
        except Exception as exc:
            error = exception_payload(exc, request_id)
            log_error(error, self._log_format)
            outcome = {"error": error}
        result = {
            "type": "result",
            "request_id": request_id,
            **outcome,
            "max_rss_kb": peak_rss_kb(),
        }
        return result, payload

    def _run_handler(
        self, message: dict[str, Any], event_json: bytes
    ) -> tuple[dict[str, Any], bytes]:
        # The same order as the runtime: context, event, handler, result.
        context = self._context_module.LambdaContext(
            aws_request_id=message["request_id"],
            invoked_function_arn=message["invoked_function_arn"],
            deadline_ms=message["deadline_ms"],
            timeout_ms=message["timeout_ms"],
            client_context=_parse_context_field(
                message.get("client_context"), "Client Context"
            ),
            identity=_parse_context_field(message.get("identity"), "Cognito Identity"),
            tenant_id=message.get("tenant_id"),
        )
        event = parse_event(event_json)
        return marshal_result(self._handler(event, context))


def _parse_context_field(text: str | None, name: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except Exception as exc:
        raise FaultError(
            "Runtime.LambdaContextUnmarshalError",
            f"Unable to parse {name} JSON: {exc}",
        ) from exc
    if not isinstance(value, dict):
        raise FaultError(
            "Runtime.LambdaContextUnmarshalError",
            f"Unable to parse {name} JSON: expected an object",
        )
    return value


def apply_environment(variables: dict[str, str | None], trace_id: str | None) -> None:
    """Set this invocation's variables (fresh credentials) and X-Ray trace id."""
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if trace_id is None:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    else:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id


def peak_rss_kb() -> int:
    """Return this process's peak resident memory so far, in kilobytes."""
    # Linux carries getrusage's peak over from the process this one was
    # forked from (the lab, often larger); /proc counts this program only.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes where Linux reports kilobytes.
    return peak // 1024 if sys.platform == "darwin" else peak


# --- Entry point ------------------------------------------------------------


def _elapsed_ms() -> float:
    return round((time.perf_counter() - _STARTED_AT) * 1000, 3)


def initialize(channel: ControlChannel, output: Output, log_format: str) -> Handler:
    """Import the handler and tell the pool; exit with status 1 if it fails."""
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as exc:
        error = exception_payload(exc, "")
        log_error(error, log_format)
        channel.send(
            {"type": "init_error", "init_duration_ms": _elapsed_ms(), "error": error}
        )
        output.end()
        sys.exit(1)
    channel.send({"type": "ready", "init_duration_ms": _elapsed_ms()})
    output.end()
    return handler


def serve(channel: ControlChannel, output: Output, runtime: Runtime) -> None:
    """Run each invocation the pool sends until it closes the control pipe."""
    for message, body in channel.messages():
        if message.get("type") != "invoke":
            raise ProtocolError(f"Unknown control message type {message.get('type')!r}")
        result, payload = runtime.invoke(message, body)
        output.end()
        channel.send(result, payload)


def main(argv: list[str]) -> None:
    """Set the process up as Lambda does, then serve the pool's invocations."""
    in_fd, out_fd, sentinel, *layer_dirs = argv[1:]
    channel = ControlChannel(int(in_fd), int(out_fd))
    output = Output(sentinel)
    invocation = CurrentInvocation()
    log_format = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "")
    context_module = load_context_module()

    arrange_sys_path(os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()), layer_dirs)
    # Lambda's /var/task is read-only, so no bytecode is ever written beside
    # the code there; writing none here keeps a same-second, same-size edit
    # from being masked by a cached .pyc.
    sys.dont_write_bytecode = True
    provide_fault_module()
    make_output_unbuffered()
    install_logging(invocation, log_format, os.environ.get("AWS_LAMBDA_LOG_LEVEL", ""))
    handler = initialize(channel, output, log_format)

    serve(channel, output, Runtime(handler, context_module, invocation, log_format))


if __name__ == "__main__":
    main(sys.argv)
