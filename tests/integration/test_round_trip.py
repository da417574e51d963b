"""One invocation, and several at once, carried end to end through the bridge.

Each test invokes a function deployed on the local cloud: the Lambda
stand-in runs the deployed proxy, which sends the request over SQS to the
lab's poller, which runs the handler and replies.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from reliability_support import messages_in, wait_until

from bridge.function_settings import FunctionSettings

HANDLERS = Path(__file__).parent / "handlers"
EVENTS = Path(__file__).parent.parent / "events"


def test_one_invocation_returns_the_handlers_result(deployed_function, local_cloud):
    name = deployed_function("echo.describe", environment={"GREETING": "hi"})

    result = local_cloud.lambda_service.invoke(name, b"{}")

    assert result.function_error is None
    payload = json.loads(result.payload)
    assert payload["function_name"] == name
    assert payload["memory_limit_in_mb"] == "128"
    assert payload["greeting"] == "hi"
    assert payload["region"] == "us-east-1"
    assert 0 < payload["remaining_ms"] <= 3000


def test_the_environment_stays_warm_between_invocations(deployed_function, local_cloud):
    name = deployed_function("echo.describe")

    first = json.loads(local_cloud.lambda_service.invoke(name, b"{}").payload)
    second = json.loads(local_cloud.lambda_service.invoke(name, b"{}").payload)

    assert second["pid"] == first["pid"]
    assert second["invocations_in_this_environment"] == 2


def test_handler_output_is_framed_by_start_end_and_report(
    deployed_function, local_cloud, lab_log
):
    name = deployed_function("echo.describe")

    payload = json.loads(local_cloud.lambda_service.invoke(name, b"{}").payload)

    request_id = payload["request_id"]
    lines = lab_log.lines_of(request_id)
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert f"describing {request_id}" in lines
    assert lines[-2] == f"END RequestId: {request_id}"
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")


def test_overlapping_invocations_each_receive_only_their_own_reply(
    deployed_function, local_cloud
):
    name = deployed_function("echo.slow_echo", concurrency=10)
    events = [json.dumps({"id": index, "sleep": 0.5}).encode() for index in range(10)]

    with ThreadPoolExecutor(10) as callers:
        results = list(
            callers.map(lambda e: local_cloud.lambda_service.invoke(name, e), events)
        )

    payloads = [json.loads(result.payload) for result in results]
    assert [payload.get("id") for payload in payloads] == list(range(10)), payloads
    # They overlapped, so they ran in several execution environments.
    assert len({payload["pid"] for payload in payloads}) > 1


def test_a_handler_error_arrives_shaped_as_lambdas(deployed_function, local_cloud):
    name = deployed_function("echo.fail")

    result = local_cloud.lambda_service.invoke(name, b'{"why": "testing"}')

    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "no good: testing"
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]


def test_an_event_with_emoji_and_control_characters_returns_unchanged(
    deployed_function, local_cloud
):
    name = deployed_function("echo.echo")
    event = (EVENTS / "awkward-characters.json").read_bytes()

    result = local_cloud.lambda_service.invoke(name, event)

    assert result.function_error is None
    assert json.loads(result.payload) == json.loads(event)


def test_a_handler_past_its_timeout_gets_lambdas_timeout_error(
    deployed_function, local_cloud
):
    name = deployed_function("echo.sleep_past_timeout", timeout_seconds=2)

    result = local_cloud.lambda_service.invoke(name, b"{}")

    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 2.00 seconds")


def test_without_a_lab_the_proxy_says_the_lab_did_not_answer(local_cloud):
    # A function the lab does not serve: nobody takes its requests... but the
    # lab of another test might, so use a stack-less queue: stop no lab here
    # and invoke a function no lab is running for at all. In sync mode the
    # proxy waits whatever the lab's heartbeat says (auto mode would answer
    # Mless.LabOffline at once, see test_offline.py).
    name = "nobody-listens"
    local_cloud.create_function(name, timeout_seconds=2, mode="sync")

    result = local_cloud.lambda_service.invoke(name, b"{}")

    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Mless.LabTimeout"
    assert "did not answer" in error["errorMessage"]


@pytest.mark.parametrize("handler", ["echo.describe"])
def test_settings_name_the_code_directory(handler):
    settings = FunctionSettings("f", handler, HANDLERS)
    assert settings.code_dir == HANDLERS


def test_the_proxy_deletes_every_reply_it_received(deployed_function, local_cloud):
    name = deployed_function("echo.describe")
    sqs = local_cloud.clients.client("sqs")

    for _ in range(3):
        assert local_cloud.lambda_service.invoke(name, b"{}").function_error is None

    # The lab deletes its own messages after replying; allow it a moment.
    reply_queues = [
        url
        for url in sqs.list_queues(
            QueueNamePrefix=local_cloud.queues.reply_queue_prefix
        ).get("QueueUrls", [])
        if sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get("mless:function")
        == name
    ]
    assert reply_queues
    wait_until(
        lambda: sum(messages_in(sqs, url) for url in reply_queues) == 0,
        timeout=10,
        what="deleting the replies",
    )
