"""Which Python runs a function, and that boto3 is there as in Lambda.

The tests that need a Python other than the lab's look for it as the lab does
(pythonX.Y on PATH, pyenv's versions, uv's Pythons) and are skipped when the
machine has none. Invocations go through a pool, as the lab runs them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.environments import interpreters
from bridge.environments.pool import Pool
from bridge.environments.process import Invocation, Outcome
from bridge.environments.variables import Platform
from bridge.errors import ConfigurationError
from bridge.function_settings import FunctionSettings

LAB_VERSION = sys.version_info[:2]
OTHER_VERSIONS = [(3, minor) for minor in range(9, 14) if (3, minor) != LAB_VERSION]

REPORTING_HANDLER = """
import sys

def handler(event, context):
    try:
        import boto3
    except ImportError as exc:
        boto3_file, version = None, repr(exc)
    else:
        boto3_file, version = boto3.__file__, boto3.__version__
    try:
        import click
        click_file = click.__file__
    except ImportError:
        click_file = None
    return {
        "version": list(sys.version_info[:2]),
        "executable": sys.executable,
        "boto3_file": boto3_file,
        "boto3_version": version,
        "click_file": click_file,
        "path": sys.path,
    }
"""


class _Silent:
    def start(self, function: str, request_id: str, version: str) -> None:
        pass

    def line(self, function: str, request_id: str | None, text: str) -> None:
        pass

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        pass


def _python(version: tuple[int, int]) -> interpreters.Interpreter:
    found = interpreters.find_python(version)
    if found is None:
        pytest.skip(f"no Python {version[0]}.{version[1]} on this machine")
    return found


def _code_dir(tmp_path: Path, source: str = REPORTING_HANDLER) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(textwrap.dedent(source))
    return code


def _invoke(pool: Pool, event: Any = None) -> Outcome:
    name = pool.settings.name
    function = {
        "name": name,
        "version": "$LATEST",
        "invoked_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        "memory_mb": 128,
        "timeout_ms": 30_000,
        "region": "us-east-1",
        "log_group": f"/aws/lambda/{name}",
        "log_stream": "2026/01/01/[$LATEST]0",
    }
    credentials = {
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "session_token": None,
    }
    invocation = Invocation(
        request_id=str(uuid.uuid4()),
        invoked_function_arn=function["invoked_arn"],
        deadline_ms=int(time.time() * 1000) + 30_000,
        timeout_ms=30_000,
        event_json=json.dumps(event or {}),
    )
    return pool.invoke(function, {}, credentials, invocation)  # type: ignore[arg-type]


def _run(settings: FunctionSettings) -> dict[str, Any]:
    pool = Pool(settings, _Silent(), Platform())
    try:
        outcome = _invoke(pool)
    finally:
        pool.close()
    assert outcome.status == "success", outcome.error
    assert outcome.payload is not None
    result: dict[str, Any] = json.loads(outcome.payload)
    return result


def test_runtime_names_are_read_as_python_versions():
    assert interpreters.runtime_version("python3.12") == (3, 12)
    assert interpreters.runtime_version("python3.9") == (3, 9)
    assert interpreters.runtime_version("nodejs20.x") is None


def test_a_function_of_the_labs_version_runs_under_the_labs_interpreter():
    runtime = f"python{LAB_VERSION[0]}.{LAB_VERSION[1]}"

    choice = interpreters.choose_interpreter("f", runtime, None)

    assert choice.interpreter.path == sys.executable
    assert choice.warnings == ()


@pytest.mark.parametrize("version", OTHER_VERSIONS, ids=lambda v: f"{v[0]}.{v[1]}")
def test_a_declared_version_the_machine_has_is_the_one_that_runs(tmp_path, version):
    interpreter = _python(version)
    runtime = f"python{version[0]}.{version[1]}"

    result = _run(FunctionSettings("f", "app.handler", _code_dir(tmp_path), runtime))

    assert tuple(result["version"]) == version
    assert result["executable"] == interpreter.path


def test_a_version_the_machine_lacks_falls_back_and_says_so_once(tmp_path, caplog):
    settings = FunctionSettings("f", "app.handler", _code_dir(tmp_path), "python3.99")
    caplog.set_level(logging.WARNING)

    pool = Pool(settings, _Silent(), Platform())
    try:
        first, second = _invoke(pool), _invoke(pool)
    finally:
        pool.close()

    assert first.status == second.status == "success"
    result = json.loads(first.payload or "{}")
    assert tuple(result["version"]) == LAB_VERSION
    warnings = [
        r.getMessage() for r in caplog.records if "python3.99" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "found no Python 3.99" in warnings[0]
    assert f"runs under Python {LAB_VERSION[0]}.{LAB_VERSION[1]}" in warnings[0]


def test_an_interpreter_without_boto3_borrows_the_labs_at_the_end_of_sys_path(
    tmp_path,
):
    version = next(
        (v for v in OTHER_VERSIONS if v >= (3, 10) and interpreters.find_python(v)),
        None,
    )
    if version is None:
        pytest.skip("no Python 3.10 or later besides the lab's")
    interpreter = _python(version)
    if "boto3" in interpreter.modules:
        pytest.skip(f"{interpreter.path} has a boto3 of its own")
    runtime = f"python{version[0]}.{version[1]}"

    result = _run(FunctionSettings("f", "app.handler", _code_dir(tmp_path), runtime))

    lent = str(interpreters.lab_packages("boto3"))
    assert result["boto3_file"].startswith(lent + os.sep)
    assert result["path"][-1] == lent
    # Only boto3 and what it needs: the lab's other packages stay out of reach.
    assert result["click_file"] is None


def test_the_lent_directory_holds_boto3_and_its_requirements_only():
    lent = interpreters.lab_packages("boto3")

    assert lent is not None
    names = {entry.name for entry in lent.iterdir() if ".dist-info" not in entry.name}
    assert {"boto3", "botocore", "s3transfer", "jmespath", "dateutil"} <= names
    assert {"click", "moto", "debugpy", "pydevd.py"}.isdisjoint(names)


def test_a_virtual_environment_imports_its_own_packages_first(tmp_path, monkeypatch):
    venv = tmp_path / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    site_packages = next(venv.glob("lib/python3.*/site-packages"))
    own_boto3 = site_packages / "boto3"
    own_boto3.mkdir()
    (own_boto3 / "__init__.py").write_text("__version__ = 'the venv own'\n")
    code = _code_dir(tmp_path)

    monkeypatch.chdir(tmp_path)
    for named in (str(venv), str(venv / "bin" / "python"), ".venv"):
        result = _run(FunctionSettings("f", "app.handler", code, interpreter=named))

        assert result["boto3_version"] == "the venv own"
        assert result["executable"] == str(venv / "bin" / "python")
        assert not any("mless-boto3" in entry for entry in result["path"])


def test_an_interpreter_that_does_not_exist_is_a_configuration_error(tmp_path):
    settings = FunctionSettings(
        "f", "app.handler", _code_dir(tmp_path), interpreter=str(tmp_path / "nope")
    )

    with pytest.raises(ConfigurationError, match="is not a Python executable"):
        Pool(settings, _Silent(), Platform())


def test_an_interpreter_that_cannot_use_the_labs_boto3_says_so():
    interpreter = _python((3, 9))
    if "boto3" in interpreter.modules or interpreter.lab_boto3_error is None:
        pytest.skip(f"{interpreter.path} can import a boto3")

    choice = interpreters.choose_interpreter("f", "python3.9", None)

    assert choice.interpreter.version == (3, 9)
    (warning,) = choice.warnings
    assert "cannot import the lab's" in warning
    assert "virtual environment with boto3" in warning


def test_pyenv_versions_are_searched_newest_first_and_its_shims_skipped(
    tmp_path, monkeypatch
):
    root = tmp_path / "pyenv"
    for install in ("3.12.1", "3.12.10", "3.12.9"):
        binary = root / "versions" / install / "bin" / "python3.12"
        binary.parent.mkdir(parents=True)
        binary.touch(mode=0o755)
    shim = root / "shims" / "python3.12"
    shim.parent.mkdir()
    shim.touch(mode=0o755)
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("PATH", str(root / "shims"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv"))

    found = list(interpreters._candidates((3, 12)))

    assert [path.parents[1].name for path in found] == ["3.12.10", "3.12.9", "3.12.1"]
