"""Logs: Lambda's framing lines, the handler's output in order, Lambda's formats."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\tDuration: \d+\.\d{2} ms\t"
    r"Billed Duration: \d+ ms\tMemory Size: 256 MB\tMax Memory Used: (?P<max>\d+) MB\t"
    r"(?:Init Duration: \d+\.\d{2} ms\t)?$"
)
TEXT_RECORD = re.compile(
    r"^\[(?P<level>[A-Z]+)\]\t\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\t"
    r"(?P<id>\S+)\t(?P<message>.*)$"
)


def test_each_invocation_is_framed_by_start_end_and_report(deploy, invoke, lab_log):
    name = deploy("probe.interleave", memory_mb=256)

    invoke(name)

    request_id = lab_log.last_request_id
    lines = lab_log.lines_of(request_id)
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert lines[-2] == f"END RequestId: {request_id}"
    report = REPORT.match(lines[-1])
    assert report is not None, lines[-1]
    assert report["id"] == request_id


def test_init_duration_is_reported_on_a_cold_start_only(deploy, invoke, lab_log):
    name = deploy("probe.counters", memory_mb=256)

    invoke(name)
    invoke(name)

    cold, warm = (lab_log.report_of(id) for id in lab_log.request_ids)
    assert "\tInit Duration: " in cold
    assert "Init Duration" not in warm


def test_max_memory_used_is_measured(deploy, invoke, lab_log):
    name = deploy("probe.allocate", memory_mb=256)

    invoke(name, {"megabytes": 1})
    small = int(REPORT.match(lab_log.report_of(lab_log.last_request_id))["max"])
    invoke(name, {"megabytes": 80})
    large = int(REPORT.match(lab_log.report_of(lab_log.last_request_id))["max"])

    assert 0 < small < large
    assert large >= 80


def test_max_memory_used_is_measured_when_the_handler_times_out(
    deploy, invoke, lab_log
):
    name = deploy("probe.allocate", memory_mb=256, timeout_seconds=3)

    invoke(name, {"megabytes": 60, "then_sleep": 30})

    report = lab_log.report_of(lab_log.last_request_id)
    assert "\tStatus: timeout\t" in report
    assert int(re.search(r"Max Memory Used: (\d+) MB", report)[1]) >= 60


def test_stdout_and_stderr_arrive_in_order_with_the_last_partial_line(
    deploy, invoke, lab_log
):
    name = deploy("probe.interleave")

    invoke(name)

    assert lab_log.output_of(lab_log.last_request_id) == [
        "one",
        "two",
        "three",
        "four, no newline",
    ]


def test_every_line_belongs_to_its_own_request_when_invocations_overlap(
    deploy, invoke, lab_log
):
    name = deploy("probe.chatter", concurrency=4, timeout_seconds=10)

    with ThreadPoolExecutor(4) as callers:
        request_ids = list(callers.map(lambda _: invoke(name).body, range(4)))

    for request_id in request_ids:
        assert lab_log.output_of(request_id) == [
            f"{request_id} line {index}" for index in range(5)
        ]


def test_logging_uses_lambdas_text_format_and_default_level(deploy, invoke, lab_log):
    name = deploy("probe.log_records")

    invoke(name)

    request_id = lab_log.last_request_id
    (line,) = lab_log.output_of(request_id)
    record = TEXT_RECORD.match(line)
    assert record is not None, line
    assert record.group("level", "id", "message") == (
        "WARNING",
        request_id,
        "warning record",
    )


def test_logging_honours_the_functions_log_level(deploy, invoke, lab_log):
    name = deploy("probe.log_records", environment={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})

    invoke(name)

    lines = lab_log.output_of(lab_log.last_request_id)
    levels = [TEXT_RECORD.match(line)["level"] for line in lines]
    assert levels == ["DEBUG", "INFO", "WARNING"]


def test_logging_writes_json_when_the_function_is_configured_for_it(
    deploy, invoke, lab_log
):
    # Lambda sets both variables from the function's LoggingConfig; the proxy
    # has them in its environment and forwards them with the function's own.
    name = deploy(
        "probe.log_records",
        environment={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    )

    invoke(name)

    request_id = lab_log.last_request_id
    records = [json.loads(line) for line in lab_log.output_of(request_id)]
    assert [(r["level"], r["message"]) for r in records] == [
        ("INFO", "info record"),
        ("WARNING", "warning record"),
    ]
    assert {r["requestId"] for r in records} == {request_id}
    assert {r["logger"] for r in records} == {"probe"}
    assert all(
        re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r["timestamp"]) for r in records
    )


def test_an_unhandled_error_is_logged_as_json_in_json_format(deploy, invoke, lab_log):
    name = deploy("probe.fail_deep", environment={"AWS_LAMBDA_LOG_FORMAT": "JSON"})

    error = invoke(name, {"card": "1234"}).body

    (line,) = lab_log.output_of(lab_log.last_request_id)
    record = json.loads(line)
    assert record.pop("level") == "ERROR"
    assert record.pop("timestamp")
    assert record == error
