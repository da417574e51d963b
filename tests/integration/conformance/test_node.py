"""Node.js: handlers run under the lab's node with Lambda's Node.js semantics."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner

from bridge.cli import main
from tests.integration.conformance.conftest import EVENTS, HANDLERS

NODE_HANDLERS = HANDLERS / "node"
NODE_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\t(?P<id>\S+)\t(?P<level>[A-Z]+)\t"
    r"(?P<message>.*)$"
)

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def test_mless_invoke_runs_a_node_handler_through_the_bridge(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "invoke",
            "context.handler",
            "--runtime",
            "nodejs20.x",
            "--code-dir",
            str(NODE_HANDLERS),
            "--event",
            str(EVENTS / "s3-object-created.json"),
        ],
    )

    assert result.exit_code == 0, result.output
    seen = json.loads(result.stdout)
    assert seen["event"] == json.loads((EVENTS / "s3-object-created.json").read_text())
    assert seen["executionEnv"] == "AWS_Lambda_nodejs20.x"
    assert "REPORT RequestId: " in result.stderr


def test_the_node_context_has_lambdas_fields(deploy, invoke, lab_log):
    name = deploy(
        "context.handler", code_dir=NODE_HANDLERS, runtime="nodejs20.x", memory_mb=256
    )

    seen = invoke(name).body

    assert seen["awsRequestId"] == lab_log.last_request_id
    assert seen["functionName"] == name
    assert seen["functionVersion"] == "$LATEST"
    assert seen["memoryLimitInMB"] == "256"
    assert seen["logGroupName"] == f"/aws/lambda/{name}"
    assert seen["invokedFunctionArn"].endswith(f":function:{name}")
    assert isinstance(seen["remaining"], int)
    assert 0 < seen["remaining"] <= 10_000
    assert seen["callbackWaitsForEmptyEventLoop"] is True
    assert seen["identity"] is None
    assert seen["clientContext"] is None
    assert seen["timeZone"] == ":UTC"


def test_a_callback_handler_answers_with_its_callback(deploy, invoke):
    name = deploy("callbacks.answers", code_dir=NODE_HANDLERS, runtime="nodejs20.x")

    assert invoke(name).body == {"answered": "by callback"}


def test_a_callback_handler_that_never_calls_back_answers_null(deploy, invoke, lab_log):
    name = deploy(
        "callbacks.neverCallsBack", code_dir=NODE_HANDLERS, runtime="nodejs20.x"
    )

    result = invoke(name)

    assert result.function_error is None
    assert result.result.payload == b"null"
    # The answer waited for the handler's timer, as Lambda's runtime waits.
    (line,) = lab_log.output_of(lab_log.last_request_id)
    assert NODE_LINE.match(line)["message"] == "timer done"


def test_a_node_error_reaches_the_caller_with_its_type_message_and_trace(
    deploy, invoke, lab_log
):
    name = deploy("fail.handler", code_dir=NODE_HANDLERS, runtime="nodejs20.x")

    result = invoke(name, {"card": "4111"})

    assert result.function_error == "Unhandled"
    error = result.body
    assert error["errorType"] == "TypeError"
    assert error["errorMessage"] == "card 4111 declined"
    # NOTE: through the proxy, which runs on a Python runtime, the Node trace
    # arrives under Python's "stackTrace" key (see docs/fidelity.md).
    assert error["stackTrace"][0] == "TypeError: card 4111 declined"
    assert f"{NODE_HANDLERS / 'fail.mjs'}:4:" in error["stackTrace"][1]


def test_node_log_lines_have_lambdas_format(deploy, invoke, lab_log):
    name = deploy("callbacks.logs", code_dir=NODE_HANDLERS, runtime="nodejs20.x")

    request_id = invoke(name).body

    lines = [NODE_LINE.match(line) for line in lab_log.output_of(request_id)]
    assert [line.group("id", "level", "message") for line in lines] == [
        (request_id, "INFO", "hello from node"),
        (request_id, "ERROR", "an error line"),
    ]
