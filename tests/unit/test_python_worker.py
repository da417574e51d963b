"""The Python execution environment, driven over its pipes as the pool drives it.

Each test writes a handler into a fresh code directory, starts
bridge/environments/python_worker.py with a Lambda-like environment and talks
to it as docs/execution-environment-protocol.md says. Set
MLESS_TEST_WORKER_PYTHON to an interpreter to run the environment under it
(the worker must work on Python 3.9 and later).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = (
    Path(__file__).resolve().parents[2] / "bridge" / "environments" / "python_worker.py"
)
_CHOSEN_PYTHON = os.environ.get("MLESS_TEST_WORKER_PYTHON", sys.executable)
# Absolute, because the worker starts in the code directory.
PYTHON = os.path.abspath(shutil.which(_CHOSEN_PYTHON) or _CHOSEN_PYTHON)
SENTINEL = "S3ntinel0"
MARKER = b"\x1e" + SENTINEL.encode("ascii") + b"\x1e"
WAIT_SECONDS = 10
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:orders:live"
NBSP = "\u00a0"


class EndOfPipe(Exception):
    """The worker closed a pipe the test was reading."""


class Worker:
    """A running execution environment, with the pool's end of its pipes."""

    def __init__(self, code_dir: Path, env: dict[str, str], layers: list[str]):
        to_worker_r, self.to_worker = os.pipe()
        self.from_worker, from_worker_w = os.pipe()
        self.process = subprocess.Popen(
            [PYTHON, str(WORKER), str(to_worker_r), str(from_worker_w), SENTINEL]
            + layers,
            env=env,
            cwd=code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(to_worker_r, from_worker_w),
        )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self._messages = bytearray()
        self._output = bytearray()

    def message(self) -> dict[str, Any]:
        """Read the next control message, with its body as the pool takes it.

        A result's body shows as `payload` (JSON text) or `raw_payload`
        (the bytes a handler returned).
        """
        line = _read_until(self.from_worker, self._messages, b"\n")
        message: dict[str, Any] = json.loads(line)
        body = _read_exactly(
            self.from_worker, self._messages, message.get("body_bytes", 0)
        )
        if message.get("payload_is_bytes"):
            message["raw_payload"] = body
        elif body:
            message["payload"] = body.decode("utf-8")
        return message

    def output(self) -> str:
        """Read the output up to the next sentinel."""
        assert self.process.stdout is not None
        data = _read_until(self.process.stdout.fileno(), self._output, MARKER)
        return data.decode("utf-8")

    def send(self, message: dict[str, Any]) -> None:
        """Write one control message to the worker; its `event` goes as the body."""
        body = b""
        if "event" in message:
            message = dict(message)
            body = message.pop("event").encode("utf-8", "backslashreplace")
            message["body_bytes"] = len(body)
        data = (json.dumps(message) + "\n").encode("ascii") + body
        while data:
            data = data[os.write(self.to_worker, data) :]

    def invoke(self, **fields: Any) -> tuple[dict[str, Any], str]:
        """Send one invocation; return its result message and its output."""
        self.send(invoke_message(**fields))
        output = self.output()
        return self.message(), output

    def returns(self, **fields: Any) -> Any:
        """Invoke and return the handler's return value, decoded."""
        result, _ = self.invoke(**fields)
        assert "error" not in result, result["error"]
        return json.loads(result["payload"])

    def hang_up(self) -> int:
        """Close the control pipe, as the pool does, and return the exit status."""
        os.close(self.to_worker)
        self.to_worker = -1
        return self.process.wait(WAIT_SECONDS)

    def stop(self) -> None:
        if self.to_worker >= 0:
            os.close(self.to_worker)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT_SECONDS)
        os.close(self.from_worker)
        assert self.process.stdout is not None
        self.process.stdout.close()


def _read_until(fd: int, buffer: bytearray, delimiter: bytes) -> bytes:
    deadline = time.monotonic() + WAIT_SECONDS
    while delimiter not in buffer:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            raise TimeoutError(f"No {delimiter!r} after {bytes(buffer)!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EndOfPipe(bytes(buffer))
        buffer += chunk
    data, _, rest = bytes(buffer).partition(delimiter)
    buffer[:] = rest
    return data


def _read_exactly(fd: int, buffer: bytearray, size: int) -> bytes:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(buffer) < size:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            raise TimeoutError(f"Only {len(buffer)} of {size} bytes came")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EndOfPipe(bytes(buffer))
        buffer += chunk
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def invoke_message(
    request_id: str = "req-1",
    event: Any = None,
    event_json: str | None = None,
    deadline_in_ms: int = 3000,
    **overrides: Any,
) -> dict[str, Any]:
    """An invoke message as the pool sends it, with fields as given."""
    message = {
        "type": "invoke",
        "request_id": request_id,
        "invoked_function_arn": ARN,
        "deadline_ms": int(time.time() * 1000) + deadline_in_ms,
        "timeout_ms": 3000,
        "event": json.dumps(event if event is not None else {}),
        "client_context": None,
        "identity": None,
        "trace_id": "Root=1-674f0000-0123456789abcdef01234567;Sampled=0",
        "tenant_id": None,
        "environment": {"AWS_ACCESS_KEY_ID": "AKIAFIRST"},
    }
    if event_json is not None:
        message["event"] = event_json
    message.update(overrides)
    return message


def lambda_environment(code_dir: Path, handler: str) -> dict[str, str]:
    """The variables Lambda would set for a function named `orders`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(code_dir),
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]0123456789abcdef",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "TZ": ":UTC",
    }


Start = Callable[..., Worker]
Ready = Callable[..., Worker]


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    path = tmp_path / "task"
    path.mkdir()
    return path


@pytest.fixture
def start(code_dir: Path) -> Iterator[Start]:
    """Start a worker on `source` (app.py) and extra `files`; stop it afterwards."""
    workers: list[Worker] = []

    def start_worker(
        source: str | None = None,
        handler: str = "app.handler",
        files: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        layers: list[str] | None = None,
    ) -> Worker:
        sources = dict(files or {})
        if source is not None:
            sources["app.py"] = source
        for name, text in sources.items():
            write(code_dir / name, text)
        environment = {**lambda_environment(code_dir, handler), **(env or {})}
        worker = Worker(code_dir, environment, layers or [])
        workers.append(worker)
        return worker

    yield start_worker
    for worker in workers:
        worker.stop()


@pytest.fixture
def ready(start: Start) -> Ready:
    """Start a worker and wait until its handler is imported."""

    def start_ready(source: str, **options: Any) -> Worker:
        worker = start(source, **options)
        message = worker.message()
        assert message["type"] == "ready", message
        worker.output()
        return worker

    return start_ready


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def init_error(worker: Worker) -> dict[str, Any]:
    """Read the init_error message and check the worker ends as the protocol says."""
    message = worker.message()
    assert message["type"] == "init_error", message
    worker.output()
    assert worker.process.wait(WAIT_SECONDS) == 1
    return message["error"]  # type: ignore[no-any-return]


RETURN_CONTEXT = """
    import json

    def handler(event, context):
        return {
            name: getattr(context, name)
            for name in (
                "aws_request_id", "invoked_function_arn", "function_name",
                "function_version", "memory_limit_in_mb", "log_group_name",
                "log_stream_name", "tenant_id",
            )
        }
"""


# --- Init -------------------------------------------------------------------


def test_ready_message_carries_init_duration_in_ms(start: Start) -> None:
    worker = start("import time\ntime.sleep(0.05)\ndef handler(e, c):\n    pass\n")

    message = worker.message()

    assert message["type"] == "ready"
    assert 50 <= message["init_duration_ms"] < 5000


def test_malformed_handler_name_is_an_init_error(start: Start) -> None:
    error = init_error(start("def handler(e, c):\n    pass\n", handler="app"))

    assert error == {
        "errorMessage": "Bad handler 'app': not enough values to unpack "
        "(expected 2, got 1)",
        "errorType": "Runtime.MalformedHandlerName",
        "requestId": "",
        "stackTrace": [],
    }


def test_missing_module_is_an_import_module_error(start: Start) -> None:
    error = init_error(start(handler="missing.handler"))

    assert error == {
        "errorMessage": "Unable to import module 'missing': No module named 'missing'",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }


def test_missing_dependency_is_an_import_module_error(start: Start) -> None:
    error = init_error(start("import not_installed\n"))

    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == (
        "Unable to import module 'app': No module named 'not_installed'"
    )


def test_syntax_error_is_reported_with_lambdas_trace_format(
    start: Start, code_dir: Path
) -> None:
    error = init_error(start("def handler(:\n    pass\n"))

    assert error["errorType"] == "Runtime.UserCodeSyntaxError"
    assert error["errorMessage"].startswith("Syntax error in module 'app': ")
    assert error["stackTrace"] == [
        f'  File "{code_dir / "app.py"}" Line 1\n    def handler(:\n'
    ]


def test_missing_handler_function_is_handler_not_found(start: Start) -> None:
    error = init_error(start("def other(e, c):\n    pass\n"))

    assert error["errorType"] == "Runtime.HandlerNotFound"
    assert error["errorMessage"] == "Handler 'handler' missing on module 'app'"


def test_built_in_module_cannot_be_the_handler_module(start: Start) -> None:
    error = init_error(start(handler="sys.handler"))

    assert error["errorType"] == "Runtime.BuiltInModuleConflict"
    assert error["errorMessage"] == (
        "Cannot use built-in module sys as a handler module"
    )


def test_other_exception_at_import_is_reported_by_its_class(start: Start) -> None:
    error = init_error(start("raise RuntimeError('no config')\n"))

    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "no config"
    assert 'app.py", line 1, in <module>' in error["stackTrace"][-1]
    assert not any("python_worker.py" in entry for entry in error["stackTrace"])


def test_init_error_is_logged_before_the_sentinel(start: Start) -> None:
    worker = start(handler="missing.handler")

    worker.message()
    output = worker.output()

    assert output == (
        "[ERROR] Runtime.ImportModuleError: Unable to import module 'missing': "
        "No module named 'missing'\nTraceback (most recent call last):\n"
    )


def test_output_of_init_ends_with_its_own_sentinel(start: Start) -> None:
    worker = start("print('loading')\ndef handler(e, c):\n    print('running')\n")

    ready = worker.message()
    init_output = worker.output()
    _, invocation_output = worker.invoke()

    assert ready["type"] == "ready"
    assert (init_output, invocation_output) == ("loading\n", "running\n")


def test_end_of_the_control_pipe_ends_the_process_cleanly(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    pass\n")

    assert worker.hang_up() == 0


# --- sys.path ---------------------------------------------------------------


def test_nested_handler_path_with_slashes_names_a_module(ready: Ready) -> None:
    worker = ready(
        None,
        handler="dir/sub/mod.fn",
        files={"dir/sub/mod.py": "def fn(event, context):\n    return 'nested'\n"},
    )

    assert worker.returns() == "nested"


def test_layers_follow_the_task_root_later_layers_first(
    ready: Ready, code_dir: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "layer1", tmp_path / "layer2"
    write(first / "python" / "shared.py", "SOURCE = 'layer1'\n")
    worker = ready(
        """
        import sys
        import shared

        def handler(event, context):
            version = "python%d.%d" % sys.version_info[:2]
            return {"path": sys.path[:5], "version": version, "shared": shared.SOURCE}
        """,
        layers=[str(first), str(second)],
    )

    result = worker.returns()

    site = f"python/lib/{result['version']}/site-packages"
    assert result["path"] == [
        str(code_dir),
        f"{second}/{site}",
        f"{first}/{site}",
        f"{second}/python",
        f"{first}/python",
    ]
    assert result["shared"] == "layer1"


def test_mless_files_are_not_importable_by_the_handler(ready: Ready) -> None:
    worker = ready(
        """
        import importlib.util
        import sys

        def handler(event, context):
            return {
                "worker": importlib.util.find_spec("python_worker") is not None,
                "context": importlib.util.find_spec("context") is not None,
                "dir": any(p.endswith("environments") for p in sys.path),
            }
        """
    )

    assert worker.returns() == {"worker": False, "context": False, "dir": False}


# --- Context ----------------------------------------------------------------


def test_context_carries_the_invocation_and_function(ready: Ready) -> None:
    worker = ready(RETURN_CONTEXT)

    context = worker.returns(request_id="req-7", tenant_id="tenant-a")

    assert context == {
        "aws_request_id": "req-7",
        "invoked_function_arn": ARN,
        "function_name": "orders",
        "function_version": "$LATEST",
        "memory_limit_in_mb": "256",
        "log_group_name": "/aws/lambda/orders",
        "log_stream_name": "2026/12/03/[$LATEST]0123456789abcdef",
        "tenant_id": "tenant-a",
    }


def test_memory_limit_is_a_string(ready: Ready) -> None:
    worker = ready(
        "def handler(e, context):\n"
        "    return type(context.memory_limit_in_mb).__name__\n"
    )

    assert worker.returns() == "str"


def test_identity_is_an_object_even_when_none_was_sent(ready: Ready) -> None:
    worker = ready(
        "def handler(e, context):\n"
        "    i = context.identity\n"
        "    return [i.cognito_identity_id, i.cognito_identity_pool_id]\n"
    )

    assert worker.returns() == [None, None]
    assert worker.returns(
        identity='{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}'
    ) == ["id-1", "pool-1"]


def test_client_context_is_none_unless_sent(ready: Ready) -> None:
    worker = ready(
        "def handler(e, context):\n    return repr(context.client_context)\n"
    )

    assert worker.returns() == "None"


def test_client_context_exposes_custom_env_and_client(ready: Ready) -> None:
    worker = ready(
        """
        def handler(event, context):
            sent = context.client_context
            client = sent.client
            return [sent.custom, sent.env, client.installation_id, client.app_title,
                    client.app_version_name, client.app_version_code,
                    client.app_package_name]
        """
    )
    client_context = {
        "client": {
            "installation_id": "inst-1",
            "app_title": "Shop",
            "app_version_name": "1.2",
            "app_version_code": "12",
            "app_package_name": "com.example.shop",
        },
        "custom": {"cart": "3"},
        "env": {"locale": "en_GB"},
    }

    result = worker.returns(client_context=json.dumps(client_context))

    assert result == [
        {"cart": "3"},
        {"locale": "en_GB"},
        "inst-1",
        "Shop",
        "1.2",
        "12",
        "com.example.shop",
    ]


def test_w3c_trace_context_is_read_from_the_client_context(ready: Ready) -> None:
    worker = ready("def handler(e, context):\n    return context.w3c()\n")
    w3c = {"traceparent": "00-abc-def-01", "baggage": 5, "other": "x"}

    traced = worker.returns(client_context=json.dumps({"w3c": w3c}))

    assert traced == {"traceparent": "00-abc-def-01"}
    assert worker.returns() == {}


def test_unparsable_client_context_is_a_context_unmarshal_error(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return 1\n")

    result, _ = worker.invoke(client_context="{nope")

    assert result["error"]["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert result["error"]["errorMessage"].startswith(
        "Unable to parse Client Context JSON: "
    )


def test_context_repr_lists_its_attributes(ready: Ready) -> None:
    worker = ready("def handler(e, context):\n    return repr(context)\n")

    text = worker.returns()

    assert text == (
        "LambdaContext([aws_request_id=req-1,log_group_name=/aws/lambda/orders,"
        "log_stream_name=2026/12/03/[$LATEST]0123456789abcdef,"
        "function_name=orders,memory_limit_in_mb=256,function_version=$LATEST,"
        f"invoked_function_arn={ARN},client_context=None,"
        "identity=CognitoIdentity([cognito_identity_id=None,"
        "cognito_identity_pool_id=None]),tenant_id=None])"
    )


def test_context_log_writes_without_a_newline(ready: Ready) -> None:
    worker = ready("def handler(e, context):\n    context.log('one')\n")

    _, output = worker.invoke()

    assert output == "one"


def test_remaining_time_counts_down_to_the_deadline(ready: Ready) -> None:
    worker = ready(
        "def handler(e, context):\n    return context.get_remaining_time_in_millis()\n"
    )

    remaining = worker.returns(deadline_in_ms=2000)

    assert isinstance(remaining, int)
    assert 1000 < remaining <= 2000


def test_remaining_time_never_exceeds_the_timeout(ready: Ready) -> None:
    worker = ready(
        "def handler(e, context):\n    return context.get_remaining_time_in_millis()\n"
    )

    assert worker.returns(deadline_in_ms=60_000) == 3000


def test_remaining_time_is_zero_past_the_deadline(ready: Ready) -> None:
    worker = ready(
        "def handler(e, context):\n    return context.get_remaining_time_in_millis()\n"
    )

    assert worker.returns(deadline_in_ms=-500) == 0


# --- Environment and state --------------------------------------------------


def test_each_invocation_brings_its_own_credentials(ready: Ready) -> None:
    worker = ready(
        "import os\ndef handler(e, c):\n    return os.environ['AWS_ACCESS_KEY_ID']\n"
    )

    first = worker.returns(environment={"AWS_ACCESS_KEY_ID": "AKIAFIRST"})
    second = worker.returns(environment={"AWS_ACCESS_KEY_ID": "AKIASECOND"})

    assert (first, second) == ("AKIAFIRST", "AKIASECOND")


def test_trace_id_is_set_then_removed_when_absent(ready: Ready) -> None:
    worker = ready(
        "import os\ndef handler(e, c):\n    return os.environ.get('_X_AMZN_TRACE_ID')\n"
    )

    assert worker.returns(trace_id="Root=1-abc") == "Root=1-abc"
    assert worker.returns(trace_id=None) is None


def test_module_globals_persist_between_invocations(ready: Ready) -> None:
    worker = ready(
        """
        calls = 0

        def handler(event, context):
            global calls
            calls += 1
            return calls
        """
    )

    assert [worker.returns(), worker.returns()] == [1, 2]


def test_event_arrives_parsed(ready: Ready) -> None:
    worker = ready("def handler(event, c):\n    return event['Records'][0]\n")

    assert worker.returns(event={"Records": [{"id": 1.5}]}) == {"id": 1.5}


def test_unparsable_event_is_an_unmarshal_error(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return 1\n")

    result, _ = worker.invoke(event_json="{not json")

    assert result["error"]["errorType"] == "Runtime.UnmarshalError"
    assert result["error"]["errorMessage"].startswith("Unable to unmarshal input: ")


def test_peak_memory_is_reported_in_kilobytes(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return None\n")

    result, _ = worker.invoke()

    assert isinstance(result["max_rss_kb"], int)
    assert 1_000 < result["max_rss_kb"] < 10_000_000


# --- Results ----------------------------------------------------------------


def test_none_is_returned_as_null(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return None\n")

    result, _ = worker.invoke()

    assert result["payload"] == "null"


def test_decimal_is_a_number_with_its_own_digits(ready: Ready) -> None:
    worker = ready(
        """
        from decimal import Decimal

        def handler(event, context):
            return {"price": Decimal("10.50"), "big": Decimal("1234567890.123456789"),
                    "none": Decimal("NaN")}
        """
    )

    result, _ = worker.invoke()

    assert result["payload"] == (
        '{"price": 10.50, "big": 1234567890.123456789, "none": NaN}'
    )


def test_bytes_are_returned_raw(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return b'\\x00\\xffraw'\n")

    result, _ = worker.invoke()

    assert "payload" not in result
    assert result["raw_payload"] == b"\x00\xffraw"


def test_a_large_event_and_its_result_travel_as_raw_bodies(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return e\n")
    event = {"data": "x" * 3_000_000, "quoted": '"\\', "text": "caf\u00e9 \U0001f600"}

    result, _ = worker.invoke(event=event)

    # The payload follows the line as bytes; the line does not carry it.
    assert result["body_bytes"] == len(result["payload"].encode("utf-8"))
    assert json.loads(result["payload"]) == event


def test_nested_bytes_and_named_tuples_follow_the_runtimes_encoder(
    ready: Ready,
) -> None:
    worker = ready(
        """
        from collections import namedtuple

        Point = namedtuple("Point", "x y")

        def handler(event, context):
            return {"body": b"ok", "at": Point(1, 2), "pair": (3, 4)}
        """
    )

    result, _ = worker.invoke()

    assert result["payload"] == '{"body": "ok", "at": {"x": 1, "y": 2}, "pair": [3, 4]}'


def test_unserializable_result_is_a_marshal_error(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return {'tags': {'a'}}\n")

    result, output = worker.invoke()

    assert result["error"] == {
        "errorMessage": "Unable to marshal response: "
        "Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": "req-1",
        "stackTrace": [],
    }
    assert output.startswith("[ERROR] Runtime.MarshalError: Unable to marshal")


def test_circular_result_is_a_marshal_error(ready: Ready) -> None:
    worker = ready(
        "def handler(e, c):\n    loop = []\n    loop.append(loop)\n    return loop\n"
    )

    result, _ = worker.invoke()

    assert result["error"]["errorMessage"] == (
        "Unable to marshal response: Circular reference detected"
    )


def test_non_ascii_is_escaped_before_python_3_12(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    return 'caf\\u00e9'\n")

    result, _ = worker.invoke()

    assert result["payload"] == '"caf\\u00e9"'


def test_non_ascii_is_kept_from_python_3_12(ready: Ready) -> None:
    worker = ready(
        "def handler(e, c):\n    return 'caf\\u00e9'\n",
        env={"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"},
    )

    result, _ = worker.invoke()

    assert result["payload"] == '"caf\u00e9"'


# --- Errors -----------------------------------------------------------------

FAILING_HANDLER = """
    def handler(event, context):
        return check(event)

    def check(order):
        raise ValueError("order has no items")
"""


def test_handler_exception_reports_only_the_users_frames(
    ready: Ready, code_dir: Path
) -> None:
    worker = ready(FAILING_HANDLER)

    result, _ = worker.invoke()

    app = code_dir / "app.py"
    assert result["error"] == {
        "errorMessage": "order has no items",
        "errorType": "ValueError",
        "requestId": "req-1",
        "stackTrace": [
            f'  File "{app}", line 2, in handler\n    return check(event)\n',
            f'  File "{app}", line 5, in check\n'
            '    raise ValueError("order has no items")\n',
        ],
    }


def test_handler_exception_is_logged_as_lambda_does(
    ready: Ready, code_dir: Path
) -> None:
    worker = ready(FAILING_HANDLER)

    _, output = worker.invoke()

    app = code_dir / "app.py"
    assert output.splitlines()[:4] == [
        "[ERROR] ValueError: order has no items",
        "Traceback (most recent call last):",
        f'{NBSP * 2}File "{app}", line 2, in handler',
        f"{NBSP * 4}return check(event)",
    ]


def test_the_environment_serves_again_after_an_error(ready: Ready) -> None:
    worker = ready(
        "def handler(event, c):\n"
        "    if event.get('fail'):\n"
        "        raise KeyError('x')\n"
        "    return 'fine'\n"
    )

    failed, _ = worker.invoke(event={"fail": True})

    assert failed["error"]["errorType"] == "KeyError"
    assert worker.returns() == "fine"


def test_sys_exit_ends_the_process(ready: Ready) -> None:
    worker = ready("import sys\ndef handler(e, c):\n    sys.exit(3)\n")

    worker.send(invoke_message())

    with pytest.raises(EndOfPipe):
        worker.message()
    assert worker.process.wait(WAIT_SECONDS) == 3


# --- Output and logging -----------------------------------------------------


def test_print_without_a_newline_arrives_before_the_sentinel(ready: Ready) -> None:
    worker = ready("def handler(e, c):\n    print('partial', end='')\n")

    _, output = worker.invoke()

    assert output == "partial"


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux pipe sizes")
def test_result_comes_only_after_the_output_and_its_sentinel(ready: Ready) -> None:
    worker = ready("def handler(event, c):\n    print('x' * event['width'])\n")
    assert worker.process.stdout is not None
    pipe_bytes = fcntl.fcntl(worker.process.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1)
    # The line leaves five bytes free in the pipe, too few for the sentinel,
    # so the worker stays blocked on it until the output is read.
    width = pipe_bytes - 6

    worker.send(invoke_message(event={"width": width}))
    early, _, _ = select.select([worker.from_worker], [], [], 0.3)
    output = worker.output()

    assert not early
    assert worker.message()["type"] == "result"
    assert output == "x" * width + "\n"


def test_stdout_and_stderr_keep_the_order_of_writes(ready: Ready) -> None:
    worker = ready(
        """
        import sys

        def handler(event, context):
            print("one", end="")
            sys.stderr.write("two")
            print("three")
        """
    )

    _, output = worker.invoke()

    assert output == "onetwothree\n"


def test_logging_uses_lambdas_text_format(ready: Ready) -> None:
    worker = ready(
        """
        import logging

        def handler(event, context):
            logging.getLogger("orders").warning("low stock: %d", 3)
        """
    )

    _, output = worker.invoke(request_id="req-9")

    timestamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(rf"\[WARNING\]\t{timestamp}\treq-9\tlow stock: 3\n", output)


def test_info_logs_are_dropped_without_a_log_level(ready: Ready) -> None:
    worker = ready("import logging\ndef handler(e, c):\n    logging.info('quiet')\n")

    _, output = worker.invoke()

    assert output == ""


def test_log_level_variable_sets_the_root_level(ready: Ready) -> None:
    worker = ready(
        "import logging\ndef handler(e, c):\n    logging.debug('loud')\n",
        env={"AWS_LAMBDA_LOG_LEVEL": "TRACE"},
    )

    _, output = worker.invoke()

    assert output.startswith("[DEBUG]\t") and output.endswith("\treq-1\tloud\n")


def test_logged_exception_ends_with_a_newline(ready: Ready) -> None:
    worker = ready(
        """
        import logging

        def handler(event, context):
            try:
                {}["missing"]
            except KeyError:
                logging.exception("lookup failed")
            print("after")
        """
    )

    _, output = worker.invoke()

    assert output.splitlines()[-2:] == ["KeyError: 'missing'", "after"]


def test_json_log_format_writes_lambdas_records(ready: Ready, code_dir: Path) -> None:
    worker = ready(
        """
        import logging

        logger = logging.getLogger("orders")

        def handler(event, context):
            logger.info("paid", extra={"order": 7})
            try:
                1 / 0
            except ZeroDivisionError:
                logger.exception("refund failed")
        """,
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    )

    _, output = worker.invoke(tenant_id="tenant-a")

    paid, failed = (json.loads(line) for line in output.splitlines())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", paid["timestamp"])
    assert {k: v for k, v in paid.items() if k != "timestamp"} == {
        "level": "INFO",
        "message": "paid",
        "logger": "orders",
        "requestId": "req-1",
        "tenantId": "tenant-a",
        "order": 7,
    }
    assert failed["errorType"] == "ZeroDivisionError"
    assert failed["errorMessage"] == "division by zero"
    assert failed["location"] == f"{code_dir / 'app.py'}:handler:10"
    assert "1 / 0" in failed["stackTrace"][-1]


def test_json_log_format_keeps_a_dict_message_structured(ready: Ready) -> None:
    worker = ready(
        "import logging\n"
        "def handler(e, c):\n"
        "    logging.warning({'order': 7, 'at': object})\n",
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
    )

    _, output = worker.invoke()

    assert json.loads(output)["message"] == {"order": 7, "at": "<class 'object'>"}


def test_json_log_format_logs_handler_errors_as_json(ready: Ready) -> None:
    worker = ready(
        "def handler(e, c):\n    raise ValueError('bad')\n",
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
    )

    _, output = worker.invoke()

    record = json.loads(output)
    assert record["level"] == "ERROR"
    assert record["errorType"] == "ValueError"
    assert record["requestId"] == "req-1"
