"""Errors: the caller sees the handler's error as Lambda reports it, as a failure."""

from __future__ import annotations

import sys

import pytest

from lambda_proxy import handler as proxy
from tests.integration.conformance.conftest import HANDLERS

PROBE = HANDLERS / "probe.py"


def _line_of(text: str) -> int:
    """The line number of the first line of probe.py that holds `text`."""
    lines = PROBE.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_a_handler_error_is_a_function_error_not_a_result(deploy, invoke):
    name = deploy("probe.fail_deep")

    result = invoke(name, "api-gateway-http-payment.json")

    assert result.function_error == "Unhandled"


def test_the_error_names_the_exception_class_and_its_message(deploy, invoke, lab_log):
    name = deploy("probe.fail_deep")

    error = invoke(name, "api-gateway-http-payment.json").body

    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorType"] == "PaymentDeclined"
    assert error["errorMessage"] == "card 4111-xxxx declined"
    assert error["requestId"] == lab_log.last_request_id


def test_the_stack_trace_holds_the_handlers_frames_only(deploy, invoke):
    name = deploy("probe.fail_deep")

    error = invoke(name, "api-gateway-http-payment.json").body

    assert error["stackTrace"] == [
        f'  File "{PROBE}", line {_line_of("return _charge(event)")}, in fail_deep\n'
        "    return _charge(event)\n",
        f'  File "{PROBE}", line {_line_of("raise PaymentDeclined")}, in _charge\n'
        "    raise PaymentDeclined(f\"card {event['card']} declined\")\n",
    ]


def test_the_lab_logs_the_error_as_lambdas_runtime_does(deploy, invoke, lab_log):
    name = deploy("probe.fail_deep")

    invoke(name, "api-gateway-http-payment.json")

    output = lab_log.output_of(lab_log.last_request_id)
    no_break = "\u00a0\u00a0"
    assert output == [
        "[ERROR] PaymentDeclined: card 4111-xxxx declined",
        "Traceback (most recent call last):",
        f'{no_break}File "{PROBE}", line {_line_of("return _charge(event)")}, '
        "in fail_deep",
        f"{no_break * 2}return _charge(event)",
        f'{no_break}File "{PROBE}", line {_line_of("raise PaymentDeclined")}, '
        "in _charge",
        f"{no_break * 2}raise PaymentDeclined(f\"card {{event['card']}} declined\")",
    ]


def test_the_environment_survives_a_handler_error(deploy, invoke):
    name = deploy("probe.fail_when_asked")
    pid = invoke(name).body

    assert invoke(name, {"card": "x"}).function_error == "Unhandled"

    assert invoke(name).body == pid


def test_on_a_runtime_without_its_fault_class_the_error_keeps_its_type():
    # Lambda's Python runtimes load awslambdaric, whose FaultException carries
    # the handler's trace; elsewhere the proxy still raises the handler's type.
    assert "awslambdaric.lambda_runtime_exception" not in sys.modules
    reply = {
        "v": 1,
        "kind": "reply",
        "correlation_id": "c",
        "request_id": "r",
        "error": {
            "errorType": "PaymentDeclined",
            "errorMessage": "no",
            "stackTrace": [],
        },
    }

    with pytest.raises(Exception, match="^no$") as raised:
        proxy.answer(reply)

    assert type(raised.value).__name__ == "PaymentDeclined"
