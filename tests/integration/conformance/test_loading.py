"""Loading the handler: Lambda's handler names, search path and init errors."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from bridge.cli import main
from tests.integration.conformance.conftest import code_dir_with

RETURN_WHERE = "def handler(event, context):\n    return __name__\n"
SITE_PACKAGES = f"python/lib/python{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.mark.parametrize(
    ("handler", "module_file", "module_name"),
    [
        ("app.handler", "app.py", "app"),
        ("pkg.mod.handler", "pkg/mod.py", "pkg.mod"),
        ("dir/sub/mod.handler", "dir/sub/mod.py", "dir.sub.mod"),
    ],
)
def test_handler_names_load_as_lambda_loads_them(
    deploy, invoke, tmp_path, handler, module_file, module_name
):
    files = {module_file: RETURN_WHERE}
    if module_name == "pkg.mod":
        files["pkg/__init__.py"] = ""
    code_dir = code_dir_with(tmp_path / "code", files)
    name = deploy(handler, code_dir=code_dir)

    result = invoke(name)

    assert result.function_error is None, result.body
    assert result.body == module_name


def test_layers_are_searched_after_the_code_newest_layer_first(
    deploy, invoke, tmp_path
):
    code_dir = code_dir_with(
        tmp_path / "code",
        {
            "app.py": "import shared, only_in_layer, versioned\n"
            "def handler(event, context):\n"
            "    return [shared.WHERE, only_in_layer.WHERE, versioned.WHERE]\n",
            "shared.py": "WHERE = 'code'\n",
        },
    )
    older = code_dir_with(
        tmp_path / "older",
        {
            "python/shared.py": "WHERE = 'older layer'\n",
            "python/only_in_layer.py": "WHERE = 'older layer'\n",
        },
    )
    newer = code_dir_with(
        tmp_path / "newer",
        {
            "python/only_in_layer.py": "WHERE = 'newer layer'\n",
            f"{SITE_PACKAGES}/site-packages/versioned.py": "WHERE = 'site-packages'\n",
        },
    )
    name = deploy("app.handler", code_dir=code_dir, layers=(older, newer))

    result = invoke(name)

    assert result.body == ["code", "newer layer", "site-packages"]


INIT_ERRORS = [
    pytest.param(
        "missing.handler",
        {},
        "Runtime.ImportModuleError",
        "Unable to import module 'missing': No module named 'missing'",
        id="import",
    ),
    pytest.param(
        "app.nope",
        {"app.py": RETURN_WHERE},
        "Runtime.HandlerNotFound",
        "Handler 'nope' missing on module 'app'",
        id="handler-not-found",
    ),
    pytest.param(
        "app.handler",
        {"app.py": "import not_installed\n" + RETURN_WHERE},
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'not_installed'",
        id="import-inside-module",
    ),
    pytest.param(
        "sys.handler",
        {},
        "Runtime.BuiltInModuleConflict",
        "Cannot use built-in module sys as a handler module",
        id="built-in",
    ),
]


@pytest.mark.parametrize(("handler", "files", "error_type", "message"), INIT_ERRORS)
def test_init_errors_carry_lambdas_types_and_messages(
    deploy, invoke, tmp_path, handler, files, error_type, message
):
    code_dir = code_dir_with(tmp_path / "code", files)
    name = deploy(handler, code_dir=code_dir)

    result = invoke(name)

    assert result.function_error == "Unhandled"
    error = result.body
    assert error["errorType"] == error_type
    assert error["errorMessage"] == message
    assert error["stackTrace"] == []


def test_a_syntax_error_names_the_file_and_line(deploy, invoke, tmp_path):
    code_dir = code_dir_with(
        tmp_path / "code", {"broken.py": "def handler(event, context):\n  return (\n"}
    )
    name = deploy("broken.handler", code_dir=code_dir)

    error = invoke(name).body

    assert error["errorType"] == "Runtime.UserCodeSyntaxError"
    assert error["errorMessage"].startswith("Syntax error in module 'broken': ")
    assert error["errorMessage"].endswith("(broken.py, line 2)")
    (location,) = error["stackTrace"]
    assert location.startswith(f'  File "{code_dir / "broken.py"}" Line 2\n')


def test_an_init_error_is_reported_with_an_error_status(
    deploy, invoke, tmp_path, lab_log
):
    name = deploy("missing.handler", code_dir=code_dir_with(tmp_path / "code", {}))

    invoke(name)

    report = lab_log.report_of(lab_log.last_request_id)
    assert "\tInit Duration: " in report
    assert report.endswith("\tStatus: error\tError Type: Runtime.ImportModuleError\t")
    # Lambda writes init's error before START, with no request id.
    assert (
        "[ERROR] Runtime.ImportModuleError: Unable to import module 'missing': "
        "No module named 'missing'"
    ) in lab_log.lines_of(None)


def test_init_runs_again_in_a_new_environment_after_an_init_error(
    deploy, invoke, tmp_path
):
    code_dir = code_dir_with(tmp_path / "code", {})
    name = deploy("late.handler", code_dir=code_dir)
    assert invoke(name).body["errorType"] == "Runtime.ImportModuleError"

    (code_dir / "late.py").write_text(RETURN_WHERE)

    assert invoke(name).body == "late"


def test_a_handler_name_without_a_dot_is_refused_before_anything_runs(tmp_path):
    # NOTE: Lambda would accept the name and fail each invocation with
    # Runtime.MalformedHandlerName; the lab refuses it up front, as a
    # configuration error the developer fixes at once.
    code_dir = code_dir_with(tmp_path / "code", {"app.py": RETURN_WHERE})

    result = CliRunner().invoke(
        main, ["invoke", "handler", "--code-dir", str(code_dir)]
    )

    assert result.exit_code == 2
    assert "is not of the form module.function" in result.stderr
