"""Marshalling the result: the caller receives what Lambda's runtime would send."""

from __future__ import annotations

import json

from tests.integration.conformance.conftest import EVENTS


def test_a_decimal_is_a_number_with_all_its_digits(deploy, invoke):
    name = deploy("probe.returns")

    result = invoke(name, "marshal-decimal.json")

    assert result.result.payload == b'{"price": 3.14159265358979323846264338327950288}'


def test_bytes_pass_through_raw(deploy, invoke):
    name = deploy("probe.returns")

    result = invoke(name, "marshal-bytes.json")

    assert result.function_error is None
    assert result.result.payload == b"\x00\xff raw bytes"


def test_none_is_null(deploy, invoke):
    name = deploy("probe.returns")

    assert invoke(name, "marshal-none.json").result.payload == b"null"


def test_a_value_json_cannot_hold_is_a_marshal_error(deploy, invoke):
    name = deploy("probe.returns")

    result = invoke(name, "marshal-set.json")

    assert result.function_error == "Unhandled"
    error = result.body
    assert error["errorType"] == "Runtime.MarshalError"
    assert error["errorMessage"] == (
        "Unable to marshal response: Object of type set is not JSON serializable"
    )
    assert error["stackTrace"] == []


def test_unicode_is_escaped_before_python_3_12(deploy, invoke):
    name = deploy("probe.returns", runtime="python3.11")
    text = json.loads((EVENTS / "unicode-text.json").read_text())["text"]

    payload = invoke(name, "unicode-text.json").result.payload

    assert payload == json.dumps({"text": text}).encode("ascii")


def test_unicode_is_kept_as_utf_8_from_python_3_12(deploy, invoke):
    name = deploy("probe.returns", runtime="python3.12")
    text = json.loads((EVENTS / "unicode-text.json").read_text())["text"]

    payload = invoke(name, "unicode-text.json").result.payload

    assert payload == json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")


def test_a_result_over_lambdas_response_limit_fails_as_lambda_says(
    deploy, invoke, lab_log
):
    name = deploy("probe.returns", memory_mb=512, timeout_seconds=10)

    result = invoke(name, "marshal-too-large.json")

    assert result.function_error == "Unhandled"
    error = result.body
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    # The JSON string is the text and its two quotes.
    assert error["errorMessage"] == (
        "Response payload size (6291558 bytes) exceeded maximum allowed payload "
        "size (6291556 bytes)."
    )
    report = lab_log.report_of(lab_log.last_request_id)
    assert report.endswith(
        "\tStatus: error\tError Type: Function.ResponseSizeTooLarge\t"
    )
