"""Context object: the handler's context has Lambda's attributes, types and values."""

from __future__ import annotations

import json
import re

from bridge.clock import ClockOffset
from tests.integration.conformance.conftest import EVENTS

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOG_STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
ACCOUNT_ARN = "arn:aws:lambda:us-east-1:123456789012:function"


def test_context_attributes_have_lambdas_types(deploy, invoke):
    name = deploy("probe.context_types", memory_mb=256)

    seen = invoke(name, "s3-object-created.json").body

    assert seen["types"] == {
        "aws_request_id": "str",
        "log_group_name": "str",
        "log_stream_name": "str",
        "function_name": "str",
        "memory_limit_in_mb": "str",
        "function_version": "str",
        "invoked_function_arn": "str",
        "client_context": "NoneType",
        "identity": "CognitoIdentity",
        "tenant_id": "NoneType",
    }
    assert seen["remaining_type"] == "int"
    assert seen["log_is_callable"] is True


def test_context_values_name_the_deployed_function(deploy, invoke, lab_log):
    name = deploy("probe.context_types", memory_mb=256)

    values = invoke(name, "s3-object-created.json").body["values"]

    assert UUID.match(values["aws_request_id"])
    assert values["aws_request_id"] == lab_log.last_request_id
    assert values["function_name"] == name
    assert values["memory_limit_in_mb"] == "256"
    assert values["function_version"] == "$LATEST"
    assert values["log_group_name"] == f"/aws/lambda/{name}"
    assert LOG_STREAM.match(values["log_stream_name"])
    assert values["invoked_function_arn"] == f"{ACCOUNT_ARN}:{name}"


def test_identity_is_an_object_whose_fields_are_none_without_cognito(deploy, invoke):
    name = deploy("probe.context_types")

    seen = invoke(name).body

    assert seen["identity"] == {
        "cognito_identity_id": None,
        "cognito_identity_pool_id": None,
    }
    assert seen["values"]["client_context"] is None


def test_context_repr_is_the_runtimes(deploy, invoke):
    name = deploy("probe.context_types")

    seen = invoke(name).body

    request_id = seen["values"]["aws_request_id"]
    assert seen["repr"].startswith(f"LambdaContext([aws_request_id={request_id},")
    assert "identity=CognitoIdentity([cognito_identity_id=None," in seen["repr"]


def test_client_context_exposes_custom_env_and_client(deploy, invoke):
    name = deploy("probe.client_context")
    sent = json.loads((EVENTS / "client-context.json").read_text())

    seen = invoke(name, client_context=sent).body

    assert seen == sent


def test_w3c_trace_context_comes_out_of_the_client_context(deploy, invoke):
    name = deploy("probe.trace_context")
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    sent = {"custom": {"k": "v"}, "w3c": {"traceparent": traceparent, "x": "y"}}

    seen = invoke(name, client_context=sent).body

    assert seen == {"w3c": {"traceparent": traceparent}, "custom": {"k": "v"}}


def test_invoked_function_arn_keeps_the_alias_it_was_invoked_with(
    deploy, invoke, local_cloud, lab_log
):
    name = deploy("probe.context_types")
    lambda_client = local_cloud.clients.client("lambda")
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion=version)

    values = invoke(f"{name}:live").body["values"]

    assert values["invoked_function_arn"] == f"{ACCOUNT_ARN}:{name}:live"
    assert values["function_version"] == version
    request_id = lab_log.last_request_id
    assert lab_log.lines_of(request_id)[0].endswith(f"Version: {version}")


def test_remaining_time_is_an_int_within_the_timeout(deploy, invoke):
    name = deploy("probe.remaining_time", timeout_seconds=10)

    remaining = invoke(name).body

    assert isinstance(remaining, int)
    assert 5000 < remaining <= 10_000


def test_remaining_time_never_exceeds_the_timeout_when_the_lab_clock_runs_ahead(
    deploy, invoke, monkeypatch
):
    # The poller moves the proxy's deadline into the lab's clock; an estimate
    # two minutes off must still leave the handler no more than its timeout.
    monkeypatch.setattr(ClockOffset, "offset_ms", property(lambda self: 120_000))
    name = deploy("probe.remaining_time", timeout_seconds=5)

    remaining = invoke(name).body

    assert 0 < remaining <= 5000


def test_context_log_writes_to_the_invocations_log(deploy, invoke, lab_log):
    name = deploy("probe.context_log")

    invoke(name)

    assert lab_log.output_of(lab_log.last_request_id) == ["written with context.log"]
