"""The Node.js execution environment's child process, driven as the parent drives it.

Each test writes a small handler into a temporary code directory, starts
`node node_worker.mjs` over real pipes with a clean environment, and reads the
control lines and the output up to the sentinel, as
docs/execution-environment-protocol.md describes.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not on PATH, so the Node.js worker cannot run"
)

WORKER = (
    Path(__file__).resolve().parents[2] / "bridge" / "environments" / "node_worker.mjs"
)
SENTINEL = "t3stSentinel"
MARKER = f"\x1e{SENTINEL}\x1e".encode("ascii")
READ_TIMEOUT_SECONDS = 10.0
TIMEOUT_MS = 3000
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:orders"


class Worker:
    """One worker process and the parent's ends of its three pipes."""

    def __init__(
        self,
        code_dir: Path,
        handler: str,
        env: Mapping[str, str],
        layers: Sequence[Path],
    ) -> None:
        control_in_r, self._control_in = os.pipe()
        self._control_out, control_out_w = os.pipe()
        self._output, output_w = os.pipe()
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": "orders",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]abc",
            **env,
        }
        args = [str(control_in_r), str(control_out_w), SENTINEL, *map(str, layers)]
        self.process = subprocess.Popen(
            [str(NODE), str(WORKER), *args],
            env=environment,
            cwd=code_dir,
            stdin=subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            pass_fds=(control_in_r, control_out_w),
        )
        for fd in (control_in_r, control_out_w, output_w):
            os.close(fd)
        self._lines = b""
        self._pending_output = b""
        self.first = self.read_message()
        # Init's output, up to the sentinel that ends it (after ready or
        # init_error alike).
        self.init_output = self.read_output()

    def read_message(self) -> dict[str, Any]:
        """The next control message; a result's body shows as its `payload`."""
        while b"\n" not in self._lines:
            self._lines += self._read(self._control_out)
        line, self._lines = self._lines.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        size = message.get("body_bytes", 0)
        while len(self._lines) < size:
            self._lines += self._read(self._control_out)
        body, self._lines = self._lines[:size], self._lines[size:]
        if body:
            message["payload"] = body.decode("utf-8")
        return message

    def read_output(self) -> str:
        """Everything written to stdout and stderr up to the next sentinel."""
        while MARKER not in self._pending_output:
            self._pending_output += self._read(self._output)
        text, self._pending_output = self._pending_output.split(MARKER, 1)
        return text.decode("utf-8")

    def invoke(
        self, event: Any = None, write_in_pieces_of: int = 0, **fields: Any
    ) -> tuple[dict[str, Any], str]:
        """Send one invocation; return its result message and its output.

        `write_in_pieces_of` > 0 writes the message that many bytes at a
        time, pausing between them, so the worker reads it in many chunks.
        """
        message = {
            "type": "invoke",
            "request_id": fields.pop("request_id", "c0ffee-1"),
            "invoked_function_arn": FUNCTION_ARN,
            "deadline_ms": int(time.time() * 1000) + TIMEOUT_MS,
            "timeout_ms": TIMEOUT_MS,
            "client_context": None,
            "identity": None,
            "trace_id": None,
            "tenant_id": None,
            "environment": {},
            **fields,
        }
        body = json.dumps(event).encode("utf-8")
        header = json.dumps({**message, "body_bytes": len(body)}) + "\n"
        data = header.encode("ascii") + body
        piece = write_in_pieces_of or len(data)
        while data:
            data = data[os.write(self._control_in, data[:piece]) :]
            if write_in_pieces_of:
                time.sleep(0.001)
        output = self.read_output()
        return self.read_message(), output

    def close_control(self) -> int:
        os.close(self._control_in)
        return self.process.wait(READ_TIMEOUT_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for fd in (self._control_in, self._control_out, self._output):
            try:
                os.close(fd)
            except OSError:
                pass

    @staticmethod
    def _read(fd: int) -> bytes:
        ready, _, _ = select.select([fd], [], [], READ_TIMEOUT_SECONDS)
        if not ready:
            raise TimeoutError("the worker wrote nothing in time")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("the worker closed the pipe")
        return chunk


Start = Callable[..., Worker]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Write handler files into a code directory and start a worker on them."""
    workers: list[Worker] = []

    def _start(
        files: Mapping[str, str],
        handler: str = "index.handler",
        env: Mapping[str, str] | None = None,
        layers: Sequence[Path] = (),
    ) -> Worker:
        code_dir = tmp_path / "code"
        write_files(code_dir, files)
        worker = Worker(code_dir, handler, env or {}, layers)
        workers.append(worker)
        return worker

    yield _start
    for worker in workers:
        worker.kill()


def write_files(root: Path, files: Mapping[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def ready(worker: Worker) -> Worker:
    assert worker.first["type"] == "ready", worker.first
    return worker


def payload(result: dict[str, Any]) -> Any:
    assert "error" not in result, result["error"]
    return json.loads(result["payload"])


# ---------------------------------------------------------------- handler styles


def test_async_handler_result_is_the_payload(start: Start) -> None:
    worker = ready(start({"index.js": "exports.handler = async (e) => ({got: e.n});"}))

    result, _ = worker.invoke({"n": 7}, request_id="r-1")

    assert result["type"] == "result"
    assert result["request_id"] == "r-1"
    assert payload(result) == {"got": 7}
    assert result["max_rss_kb"] > 1000


def test_a_large_event_and_its_result_travel_as_raw_bodies(start: Start) -> None:
    worker = ready(start({"index.js": "exports.handler = async (e) => e;"}))
    event = {"data": "x" * 3_000_000, "quoted": '"\\', "text": "caf\u00e9 \U0001f600"}

    result, _ = worker.invoke(event)

    assert result["body_bytes"] == len(result["payload"].encode("utf-8"))
    assert payload(result) == event


def test_a_message_that_arrives_in_pieces_is_read_whole(start: Start) -> None:
    worker = ready(start({"index.js": "exports.handler = async (e) => e.n;"}))

    result, _ = worker.invoke({"n": 5}, write_in_pieces_of=3)

    assert payload(result) == 5


def test_callback_result_waits_for_the_event_loop_to_empty(start: Start) -> None:
    source = """
    exports.handler = (event, context, callback) => {
      setTimeout(() => console.log("late work"), 50);
      callback(null, "done");
    };
    """
    worker = ready(start({"index.js": source}))

    result, output = worker.invoke()

    assert payload(result) == "done"
    assert "late work" in output


def test_callback_answers_at_once_when_not_waiting_for_the_event_loop(
    start: Start,
) -> None:
    source = """
    exports.handler = (event, context, callback) => {
      context.callbackWaitsForEmptyEventLoop = false;
      setTimeout(() => {}, 2000);
      callback(null, "early");
    };
    """
    worker = ready(start({"index.js": source}))

    started = time.monotonic()
    result, _ = worker.invoke()

    assert payload(result) == "early"
    assert time.monotonic() - started < 1.5


def test_handler_that_never_calls_back_answers_null(start: Start) -> None:
    source = "exports.handler = (event, context, callback) => { return 42; };"
    worker = ready(start({"index.js": source}))

    result, _ = worker.invoke()

    assert result["payload"] == "null"


def test_async_handler_that_never_settles_fails_with_node_js_exit(start: Start) -> None:
    source = "exports.handler = async () => { await new Promise(() => {}); };"
    worker = ready(start({"index.js": source}))

    result, output = worker.invoke()

    assert result["error"]["errorType"] == "Runtime.NodeJsExit"
    assert "Invoke Error" in output


def test_undefined_result_is_sent_as_null(start: Start) -> None:
    worker = ready(start({"index.js": "exports.handler = async () => undefined;"}))

    result, _ = worker.invoke()

    assert result["payload"] == "null"


def test_first_of_callback_and_context_methods_wins(start: Start) -> None:
    source = """
    exports.handler = (event, context, callback) => {
      context.succeed("first");
      context.fail(new Error("second"));
      callback(null, "third");
    };
    """
    worker = ready(start({"index.js": source}))

    result, _ = worker.invoke()

    assert payload(result) == "first"


def test_context_fail_without_an_error_reports_handled(start: Start) -> None:
    worker = ready(
        start({"index.js": "exports.handler = (e, context) => context.fail();"})
    )

    result, _ = worker.invoke()

    assert result["error"] == {
        "errorType": "string",
        "errorMessage": "handled",
        "trace": [],
    }


def test_result_that_cannot_be_stringified_is_lambdas_error(start: Start) -> None:
    source = "exports.handler = async () => { const a = {}; a.self = a; return a; };"
    worker = ready(start({"index.js": source}))

    result, _ = worker.invoke()

    assert result["error"]["errorType"] == "Error"
    assert result["error"]["errorMessage"] == "Unable to stringify response body"


# ---------------------------------------------------------------- loading


def test_mjs_handler_is_loaded_as_an_es_module(start: Start) -> None:
    source = "export const handler = async () => import.meta.url.endsWith('app.mjs');"
    worker = ready(start({"app.mjs": source}, handler="app.handler"))

    result, _ = worker.invoke()

    assert payload(result) is True


def test_js_handler_is_an_es_module_under_package_type_module(start: Start) -> None:
    files = {
        "package.json": '{"type": "module"}',
        "index.js": "export const handler = async () => typeof require;",
    }
    worker = ready(start(files))

    result, _ = worker.invoke()

    assert payload(result) == "undefined"


def test_cjs_handler_is_loaded_as_commonjs(start: Start) -> None:
    files = {
        "package.json": '{"type": "module"}',
        "app.cjs": "exports.handler = async () => typeof require;",
    }
    worker = ready(start(files, handler="app.handler"))

    result, _ = worker.invoke()

    assert payload(result) == "function"


def test_nested_handler_path_and_subdirectory_are_followed(start: Start) -> None:
    source = "exports.api = { v1: { get: async () => 'nested' } };"
    worker = ready(start({"src/routes.js": source}, handler="src/routes.api.v1.get"))

    result, _ = worker.invoke()

    assert payload(result) == "nested"


INIT_ERRORS = [
    pytest.param(
        {},
        "index.handler",
        "Runtime.ImportModuleError",
        "Error: Cannot find module 'index'",
        id="missing-module",
    ),
    pytest.param(
        {"index.js": "exports.x = 1;"},
        "index.handler",
        "Runtime.HandlerNotFound",
        "index.handler is undefined or not exported",
        id="not-exported",
    ),
    pytest.param(
        {"index.js": "exports.handler = 1;"},
        "index.handler",
        "Runtime.HandlerNotFound",
        "index.handler is not a function",
        id="not-a-function",
    ),
    pytest.param(
        {"index.js": ""},
        "index",
        "Runtime.MalformedHandlerName",
        "Bad handler",
        id="no-dot",
    ),
    pytest.param(
        {"index.js": ""},
        "../index.handler",
        "Runtime.MalformedHandlerName",
        "'../index.handler' is not a valid handler name.",
        id="dot-dot",
    ),
    pytest.param(
        {"index.js": "exports.handler = ("},
        "index.handler",
        "Runtime.UserCodeSyntaxError",
        "SyntaxError: ",
        id="syntax",
    ),
    pytest.param(
        {"index.js": "throw new TypeError('bad config');"},
        "index.handler",
        "TypeError",
        "bad config",
        id="top-level-throw",
    ),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_ERRORS)
def test_init_error_is_reported_with_lambdas_type_then_the_worker_exits_1(
    start: Start, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    worker = start(files, handler=handler)

    init_error = worker.first
    output = worker.init_output

    assert init_error["type"] == "init_error"
    assert init_error["init_duration_ms"] > 0
    error = init_error["error"]
    assert error["errorType"] == error_type
    assert error["errorMessage"].startswith(message)
    assert error["requestId"] == ""
    assert error["trace"]
    assert "\tundefined\tERROR\tUncaught Exception \t{" in output
    assert worker.process.wait(READ_TIMEOUT_SECONDS) == 1


def test_rejection_left_unhandled_at_init_is_an_init_error(start: Start) -> None:
    source = "Promise.reject(new Error('no table')); exports.handler = async () => 1;"
    worker = start({"index.js": source})

    error = worker.first["error"]

    assert error["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert error["errorMessage"] == "Error: no table"
    assert "Unhandled Promise Rejection" in worker.init_output
    assert worker.process.wait(READ_TIMEOUT_SECONDS) == 1


def test_syntax_error_trace_points_at_the_users_file(start: Start) -> None:
    worker = start({"lib/app.js": "const x = ;"}, handler="lib/app.handler")

    error = worker.first["error"]

    assert error["errorType"] == "Runtime.UserCodeSyntaxError"
    assert error["trace"][0].endswith("lib/app.js:1")


def test_layer_packages_resolve_for_require_and_import(
    start: Start, tmp_path: Path
) -> None:
    layer = tmp_path / "layer"
    write_files(
        layer / "nodejs" / "node_modules",
        {
            "shared-cjs/index.js": "module.exports = 'cjs from layer';",
            "shared-esm/package.json": '{"type": "module", "exports": "./main.js"}',
            "shared-esm/main.js": "export default 'esm from layer';",
        },
    )
    source = """
    import { createRequire } from "node:module";
    import esm from "shared-esm";
    const cjs = createRequire(import.meta.url)("shared-cjs");
    export const handler = async () => [cjs, esm];
    """
    worker = ready(start({"index.mjs": source}, layers=[layer]))

    result, _ = worker.invoke()

    assert payload(result) == ["cjs from layer", "esm from layer"]


# ---------------------------------------------------------------- errors


def test_error_payload_has_type_message_and_trace(start: Start) -> None:
    source = """
    class OrderError extends Error {}
    OrderError.prototype.name = "OrderError";
    exports.handler = async () => { throw new OrderError("no stock"); };
    """
    worker = ready(start({"index.js": source}))

    result, output = worker.invoke(request_id="r-err")

    error = result["error"]
    assert error["errorType"] == "OrderError"
    assert error["errorMessage"] == "no stock"
    assert error["trace"][0] == "OrderError: no stock"
    assert any("index.js" in frame for frame in error["trace"][1:])
    assert '\tr-err\tERROR\tInvoke Error \t{"errorType":"OrderError"' in output


def test_thrown_string_reports_its_type(start: Start) -> None:
    worker = ready(
        start({"index.js": "exports.handler = async () => { throw 'nope'; };"})
    )

    result, _ = worker.invoke()

    assert result["error"] == {
        "errorType": "string",
        "errorMessage": "nope",
        "trace": [],
    }


def test_unhandled_rejection_answers_the_invocation_then_exits_128(
    start: Start,
) -> None:
    source = """
    exports.handler = (event, context, callback) => {
      Promise.reject(new Error("forgotten"));
      setTimeout(() => callback(null, "never"), 1000);
    };
    """
    worker = ready(start({"index.js": source}))

    result, output = worker.invoke()

    assert result["error"]["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert result["error"]["errorMessage"] == "Error: forgotten"
    assert "Unhandled Promise Rejection" in output
    assert worker.process.wait(READ_TIMEOUT_SECONDS) == 128


def test_uncaught_exception_answers_the_invocation_then_exits_129(start: Start) -> None:
    source = """
    exports.handler = async () => {
      setTimeout(() => { throw new RangeError("in a timer"); }, 10);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    };
    """
    worker = ready(start({"index.js": source}))

    result, output = worker.invoke()

    assert result["error"]["errorType"] == "RangeError"
    assert "Uncaught Exception" in output
    assert worker.process.wait(READ_TIMEOUT_SECONDS) == 129


# ---------------------------------------------------------------- context


def test_context_carries_lambdas_fields(start: Start) -> None:
    source = """
    exports.handler = async (event, context) => ({
      ...context,
      remaining: context.getRemainingTimeInMillis(),
      waits: context.callbackWaitsForEmptyEventLoop,
    });
    """
    worker = ready(start({"index.js": source}))

    result, _ = worker.invoke(
        request_id="r-ctx",
        client_context='{"custom": {"tier": "gold"}}',
        tenant_id="tenant-9",
    )

    context = payload(result)
    assert context["functionName"] == "orders"
    assert context["functionVersion"] == "$LATEST"
    assert context["memoryLimitInMB"] == "256"
    assert context["logGroupName"] == "/aws/lambda/orders"
    assert context["logStreamName"] == "2026/12/03/[$LATEST]abc"
    assert context["invokedFunctionArn"].endswith(":function:orders")
    assert context["awsRequestId"] == "r-ctx"
    assert context["tenantId"] == "tenant-9"
    assert context["clientContext"] == {"custom": {"tier": "gold"}}
    assert "identity" not in context  # undefined, as in Lambda
    assert 0 < context["remaining"] <= TIMEOUT_MS
    assert context["waits"] is True


def test_remaining_time_is_clamped_at_zero_past_the_deadline(start: Start) -> None:
    source = (
        "exports.handler = async (e, context) => context.getRemainingTimeInMillis();"
    )
    worker = ready(start({"index.js": source}))

    result, _ = worker.invoke(deadline_ms=int(time.time() * 1000) - 500)

    assert payload(result) == 0


# ---------------------------------------------------------------- output


def test_console_lines_use_lambdas_text_format(start: Start) -> None:
    source = """
    console.log("at init");
    exports.handler = async () => {
      console.warn("two\\nlines");
      console.error("n=%d", 5);
    };
    """
    worker = ready(start({"index.js": source}))

    _, output = worker.invoke(request_id="r-log")

    init_line = worker.init_output.split("\n")[0]
    lines = output.split("\n")  # splitlines() would also split at "\r"
    assert init_line.split("\t")[1:] == ["undefined", "INFO", "at init"]
    assert lines[0].split("\t")[1:] == ["r-log", "WARN", "two\rlines"]
    assert lines[1].split("\t")[1:] == ["r-log", "ERROR", "n=5"]
    assert lines[0].split("\t")[0].endswith("Z")


def test_json_log_format_writes_records_and_honours_the_level(start: Start) -> None:
    source = """
    exports.handler = async () => {
      console.debug("hidden");
      console.info("shown", 1);
    };
    """
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    worker = ready(start({"index.js": source}, env=env))

    _, output = worker.invoke(request_id="r-json")

    records = [json.loads(line) for line in output.strip().split("\n")]
    assert len(records) == 1
    assert records[0]["level"] == "INFO"
    assert records[0]["requestId"] == "r-json"
    assert records[0]["message"] == "shown 1"
    assert records[0]["timestamp"].endswith("Z")


def test_output_without_a_trailing_newline_arrives_before_the_sentinel(
    start: Start,
) -> None:
    source = """
    exports.handler = async () => {
      process.stdout.write("out, no newline");
      process.stderr.write("|err, no newline");
      return 1;
    };
    """
    worker = ready(start({"index.js": source}))

    _, output = worker.invoke()

    assert output == "out, no newline|err, no newline"


def test_sentinel_is_hidden_from_the_handler(start: Start) -> None:
    worker = ready(start({"index.js": "exports.handler = async () => process.argv;"}))

    result, _ = worker.invoke()

    assert SENTINEL not in json.dumps(payload(result))


# ---------------------------------------------------------------- lifetime


def test_module_state_persists_between_invocations(start: Start) -> None:
    source = "let count = 0; exports.handler = async () => ++count;"
    worker = ready(start({"index.js": source}))

    first, _ = worker.invoke(request_id="r-1")
    second, _ = worker.invoke(request_id="r-2")

    assert (payload(first), payload(second)) == (1, 2)


def test_environment_and_trace_id_are_applied_per_invocation(start: Start) -> None:
    source = """
    exports.handler = async () =>
      [process.env.AWS_SESSION_TOKEN, process.env._X_AMZN_TRACE_ID ?? null];
    """
    worker = ready(start({"index.js": source}))

    first, _ = worker.invoke(
        environment={"AWS_SESSION_TOKEN": "token-1"}, trace_id="Root=1-abc"
    )
    second, _ = worker.invoke(environment={"AWS_SESSION_TOKEN": "token-2"})

    assert payload(first) == ["token-1", "Root=1-abc"]
    assert payload(second) == ["token-2", None]


def test_worker_exits_0_when_the_control_pipe_closes(start: Start) -> None:
    source = "setInterval(() => {}, 1000); exports.handler = async () => 1;"
    worker = ready(start({"index.js": source}))

    worker.invoke()

    assert worker.close_control() == 0
