"""Environment: Lambda's variables with the deployed function's values, nothing else."""

from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.integration.conformance.conftest import HANDLERS

LOG_STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
TRACE_ID = re.compile(
    r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$"
)
RUNNING_PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def test_reserved_variables_hold_the_deployed_functions_values(deploy, invoke):
    name = deploy("probe.environment", memory_mb=512)

    seen = invoke(name, "s3-object-created.json").body["variables"]

    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert seen["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert seen["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert seen["AWS_REGION"] == seen["AWS_DEFAULT_REGION"] == "us-east-1"
    assert seen["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert LOG_STREAM.match(seen["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert seen["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{RUNNING_PYTHON}"
    assert seen["_HANDLER"] == "probe.environment"
    assert seen["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert seen["LANG"] == "en_US.UTF-8"
    assert seen["TZ"] == ":UTC"


def test_the_task_root_is_the_code_directory_and_the_working_directory(deploy, invoke):
    name = deploy("probe.environment")

    seen = invoke(name).body

    assert seen["variables"]["LAMBDA_TASK_ROOT"] == str(HANDLERS)
    assert seen["cwd"] == str(HANDLERS)


def test_the_functions_own_variables_arrive(deploy, invoke):
    name = deploy("probe.environment", environment={"TABLE": "orders", "FLAG": "a=b c"})

    seen = invoke(name).body["variables"]

    assert seen["TABLE"] == "orders"
    assert seen["FLAG"] == "a=b c"
    assert not any(name.startswith("MLESS_") for name in seen)


def test_the_handler_gets_the_roles_credentials_not_the_labs(deploy, invoke):
    name = deploy("probe.environment")

    seen = invoke(name).body["variables"]

    # The tests' own process holds the fake key "testing"; the proxy's role
    # credentials come from STS.
    assert seen["AWS_ACCESS_KEY_ID"] != os.environ["AWS_ACCESS_KEY_ID"]
    assert seen["AWS_SECRET_ACCESS_KEY"] != os.environ["AWS_SECRET_ACCESS_KEY"]
    assert seen["AWS_SESSION_TOKEN"]


def test_nothing_of_the_labs_shell_leaks_in(deploy, invoke, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "lab-profile")
    monkeypatch.setenv("TZ", "America/New_York")
    monkeypatch.setenv("LAB_ONLY_SETTING", "secret")
    monkeypatch.setenv("PYTHONPATH", "/lab/python/path")
    name = deploy("probe.environment")

    seen = invoke(name).body

    variables = seen["variables"]
    for lab_only in ("AWS_PROFILE", "LAB_ONLY_SETTING", "PYTHONPATH", "HOME"):
        assert lab_only not in variables, lab_only
    assert variables["TZ"] == ":UTC"
    assert seen["zone"] == "UTC"


def test_a_function_that_sets_its_own_time_zone_keeps_it(deploy, invoke):
    name = deploy("probe.environment", environment={"TZ": "Asia/Tokyo"})

    seen = invoke(name).body

    assert seen["variables"]["TZ"] == "Asia/Tokyo"
    assert seen["zone"] == "JST"


def test_each_invocation_has_its_own_trace_id(deploy, invoke):
    name = deploy("probe.environment")

    first = invoke(name).body["variables"]["_X_AMZN_TRACE_ID"]
    second = invoke(name).body["variables"]["_X_AMZN_TRACE_ID"]

    assert TRACE_ID.match(first)
    assert TRACE_ID.match(second)
    assert first != second


def test_variables_are_isolated_between_overlapping_invocations(deploy, invoke):
    name = deploy("probe.mark_environment", concurrency=4, timeout_seconds=10)

    with ThreadPoolExecutor(4) as callers:
        seen = list(callers.map(lambda _: invoke(name).body, range(4)))

    assert [each["mark"] for each in seen] == [each["request_id"] for each in seen]
    assert len({each["pid"] for each in seen}) > 1
