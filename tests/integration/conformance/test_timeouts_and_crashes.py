"""Timeouts and crashes: Lambda's own errors, and a fresh environment afterwards."""

from __future__ import annotations

import pytest


def test_a_handler_past_its_deadline_gets_lambdas_timeout_error(
    deploy, invoke, lab_log
):
    name = deploy("probe.sleep", timeout_seconds=3)

    result = invoke(name, {"seconds": 30})

    assert result.function_error == "Unhandled"
    request_id = lab_log.last_request_id
    assert result.body == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
        "3.00 seconds",
    }


def test_the_report_line_of_a_timeout_says_so(deploy, invoke, lab_log):
    name = deploy("probe.sleep", timeout_seconds=3)

    invoke(name, {"seconds": 30})

    report = lab_log.report_of(lab_log.last_request_id)
    assert "\tDuration: 3000.00 ms\t" in report
    assert report.endswith("\tStatus: timeout\t")


def test_a_timed_out_environment_is_replaced_and_its_result_never_arrives(
    deploy, invoke
):
    name = deploy("probe.sleep", timeout_seconds=3)
    assert invoke(name, {"seconds": 3.5}).function_error == "Unhandled"

    # A new environment answers at once; the stopped one never answers "late".
    result = invoke(name, {"seconds": 0})

    assert result.function_error is None
    assert result.body == "late"
    assert invoke(name, {"seconds": 0}).body == "late"


CRASHES = [
    pytest.param(
        "crash-os-exit.json", "Runtime exited with error: exit status 7", id="os._exit"
    ),
    pytest.param(
        "crash-sys-exit.json", "Runtime exited with error: exit status 3", id="sys.exit"
    ),
    pytest.param(
        "crash-sys-exit-no-status.json",
        "Runtime exited without providing a reason",
        id="sys.exit()",
    ),
    pytest.param(
        "crash-segfault.json",
        "Runtime exited with error: signal: segmentation fault",
        id="segfault",
    ),
    pytest.param(
        "crash-killed.json", "Runtime exited with error: signal: killed", id="killed"
    ),
]


@pytest.mark.parametrize(("event", "reason"), CRASHES)
def test_a_crash_is_lambdas_runtime_exit_error(deploy, invoke, lab_log, event, reason):
    name = deploy("probe.crash")

    result = invoke(name, event)

    assert result.function_error == "Unhandled"
    request_id = lab_log.last_request_id
    # Lambda's platform reports the exit: its error has these two fields only.
    assert result.body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: {reason}",
    }
    report = lab_log.report_of(request_id)
    assert report.endswith("\tStatus: error\tError Type: Runtime.ExitError\t")


def test_a_crashed_functions_next_invocation_runs_init_again(deploy, invoke, lab_log):
    name = deploy("probe.crash")
    invoke(name, "crash-os-exit.json")
    crashed = lab_log.last_request_id

    result = invoke(name, {"how": "nothing"})

    assert result.body["errorType"] == "ValueError"
    assert "\tInit Duration: " in lab_log.report_of(crashed)
    assert "\tInit Duration: " in lab_log.report_of(lab_log.last_request_id)
