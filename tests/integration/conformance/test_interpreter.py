"""Interpreter: the function runs under the Python its runtime names, if the lab has it.

Which interpreter is chosen is bridge/environments/interpreters.py's business;
these cases check what a handler sees through the bridge, for every Python
runtime Lambda offers that this machine has.
"""

from __future__ import annotations

import logging
import shutil
import sys

import pytest

from tests.integration.conformance.conftest import HANDLERS

PYTHON_RUNTIMES = [f"python3.{minor}" for minor in range(9, 14)]


def _lab_has(runtime: str) -> bool:
    return runtime == f"python3.{sys.version_info[1]}" or bool(shutil.which(runtime))


@pytest.mark.parametrize("runtime", PYTHON_RUNTIMES)
def test_the_handler_runs_under_the_python_its_runtime_names(deploy, invoke, runtime):
    if not _lab_has(runtime):
        pytest.skip(f"this machine has no {runtime}")
    name = deploy("probe.version", runtime=runtime, timeout_seconds=10)

    seen = invoke(name).body

    assert f"python{seen['version'][0]}.{seen['version'][1]}" == runtime
    assert seen["execution_env"] == f"AWS_Lambda_{runtime}"


@pytest.mark.parametrize("runtime", PYTHON_RUNTIMES)
def test_every_python_reports_errors_in_the_same_shape(deploy, invoke, runtime):
    if not _lab_has(runtime):
        pytest.skip(f"this machine has no {runtime}")
    name = deploy("probe.fail_deep", runtime=runtime, timeout_seconds=10)

    error = invoke(name, {"card": "1"}).body

    assert error["errorType"] == "PaymentDeclined"
    assert [entry.splitlines()[0] for entry in error["stackTrace"]] == [
        f'  File "{HANDLERS / "probe.py"}", line {line}, in {function}'
        for line, function in _frames_of_fail_deep()
    ]
    # Lambda's trace has no "^^^^" markers, whatever the Python version.
    assert all(len(entry.splitlines()) == 2 for entry in error["stackTrace"])


def test_a_runtime_the_lab_lacks_runs_under_the_labs_python_and_says_so_once(
    deploy, invoke, caplog
):
    caplog.set_level(logging.WARNING)
    name = deploy("probe.version", runtime="python3.99")

    first = invoke(name).body
    second = invoke(name).body

    assert first == second
    assert first["version"] == list(sys.version_info[:2])
    assert first["execution_env"] == "AWS_Lambda_python3.99"
    said = [record for record in caplog.records if "python3.99" in record.getMessage()]
    assert len(said) == 1, [record.getMessage() for record in said]


def _frames_of_fail_deep() -> list[tuple[int, str]]:
    lines = (HANDLERS / "probe.py").read_text().splitlines()

    def line_of(text: str) -> int:
        return next(number for number, line in enumerate(lines, 1) if text in line)

    return [
        (line_of("return _charge(event)"), "fail_deep"),
        (line_of("raise PaymentDeclined"), "_charge"),
    ]
