"""`mless invoke` through click's runner: the command a newcomer tries first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main


def _code(tmp_path: Path, source: str) -> Path:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "app.py").write_text(source)
    return code_dir


def test_invoke_prints_the_handlers_return_value(tmp_path):
    code_dir = _code(
        tmp_path,
        "def handler(event, context):\n"
        "    print('computing')\n"
        "    return {'sum': event['a'] + event['b']}\n",
    )
    event = tmp_path / "e.json"
    event.write_text('{"a": 2, "b": 3}')

    result = CliRunner().invoke(
        main,
        ["invoke", "app.handler", "--code-dir", str(code_dir), "--event", str(event)],
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip()) == {"sum": 5}
    assert "computing" in result.stderr
    assert "REPORT RequestId:" in result.stderr


def test_invoke_exits_1_with_the_error_payload_on_a_function_error(tmp_path):
    code_dir = _code(
        tmp_path, "def handler(event, context):\n    raise KeyError('x')\n"
    )

    result = CliRunner().invoke(
        main, ["invoke", "app.handler", "--code-dir", str(code_dir)]
    )

    assert result.exit_code == 1
    error = json.loads(result.stdout.strip())
    assert error["errorType"] == "KeyError"


def test_invoke_rejects_a_malformed_env_option_with_exit_2(tmp_path):
    code_dir = _code(tmp_path, "def handler(event, context):\n    return 1\n")

    result = CliRunner().invoke(
        main,
        ["invoke", "app.handler", "--code-dir", str(code_dir), "--env", "NOEQUALS"],
    )

    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


@pytest.mark.parametrize("name", ["AWS_REGION", "_HANDLER", "AWS_SESSION_TOKEN"])
def test_invoke_rejects_a_variable_lambda_reserves_with_exit_2(tmp_path, name):
    code_dir = _code(tmp_path, "def handler(event, context):\n    return 1\n")

    result = CliRunner().invoke(
        main,
        ["invoke", "app.handler", "--code-dir", str(code_dir), "--env", f"{name}=x"],
    )

    assert result.exit_code == 2
    assert f"{name} is reserved: Lambda sets it, and a function cannot" in (
        result.output
    )


def test_invoke_rejects_an_unknown_debugger_kind_with_exit_2(tmp_path):
    code_dir = _code(tmp_path, "def handler(event, context):\n    return 1\n")

    result = CliRunner().invoke(
        main,
        ["invoke", "app.handler", "--code-dir", str(code_dir), "--debugger", "gdb"],
    )

    assert result.exit_code == 2
    assert result.stderr.startswith("mless: --debugger 'gdb'")
