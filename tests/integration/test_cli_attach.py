"""`mless attach`, `detach`, `status` and `destroy` through click's runner, on moto."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bridge.cli import main
from bridge.snapshots import FunctionState

MakeClient = Callable[..., Any]

APP_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  AppRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
  OrdersFunction:
    Type: AWS::Lambda::Function
    Properties:
      Handler: app.handler
      Runtime: python3.12
      Role: !GetAtt AppRole.Arn
      Code:
        ZipFile: "def handler(event, context):\\n    return 1\\n"
      Environment:
        Variables:
          REGION_NAME: !Sub "${AWS::Region}"
          ROLE_ARN: !GetAtt AppRole.Arn
"""


@pytest.fixture(autouse=True)
def on_moto(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLESS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("MLESS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def mless(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments))


@pytest.fixture(scope="module")
def stack_name(moto_endpoint: str) -> str:
    name = f"mless-cli-attach-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLESS_ENDPOINT_URL", moto_endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        result = mless("deploy", "--stack", name)
    assert result.exit_code == 0, result.output
    return name


@pytest.fixture
def function(moto_client: MakeClient) -> str:
    """A Python function deployed by another tool."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    role = moto_client("iam").create_role(
        RoleName=f"role-{name}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 1\n")
    moto_client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=4,
        Environment={"Variables": {"GREETING": "hello"}},
    )
    return name


def _state(moto_client: MakeClient, name: str) -> FunctionState:
    return FunctionState.of(
        moto_client("lambda").get_function_configuration(FunctionName=name)
    )


def test_attach_then_detach_through_the_cli_restores_the_function(
    stack_name: str, function: str, moto_client: MakeClient
) -> None:
    before = _state(moto_client, function)

    attached = mless("attach", function, "--stack", stack_name, "--debug")
    during = _state(moto_client, function)
    detached = mless("detach", function)

    assert attached.exit_code == 0, attached.output
    assert attached.stdout == f"attached {function}\n"
    assert during.handler == "lambda_proxy.handler.handler"
    assert during.timeout_seconds == 900
    assert detached.exit_code == 0, detached.output
    assert detached.stdout == f"detached {function}: restored exactly\n"
    assert _state(moto_client, function) == before


def test_attach_dry_run_prints_the_plan_and_changes_nothing(
    stack_name: str, function: str, moto_client: MakeClient
) -> None:
    before = _state(moto_client, function)

    result = mless("attach", function, "--stack", stack_name, "--dry-run")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{function}: record its configuration in s3://")
    assert f"{function}: run lambda_proxy.handler.handler (python3.12)" in lines[-1]
    assert _state(moto_client, function) == before


def test_detach_without_names_detaches_every_function_of_the_stack(
    stack_name: str, function: str, moto_client: MakeClient
) -> None:
    before = _state(moto_client, function)
    assert mless("attach", function, "--stack", stack_name).exit_code == 0

    result = mless("detach", "--stack", stack_name)

    assert result.exit_code == 0, result.output
    assert f"detached {function}: restored exactly" in result.stdout
    assert _state(moto_client, function) == before


def test_status_reports_a_function_that_lost_its_proxy(
    stack_name: str, function: str, moto_client: MakeClient
) -> None:
    assert mless("attach", function, "--stack", stack_name).exit_code == 0
    moto_client("lambda").update_function_configuration(
        FunctionName=function, Handler="app.v2", Runtime="python3.12", Layers=[]
    )

    result = mless("status", "--stack", stack_name)
    detached = mless("detach", function)

    assert result.exit_code == 1
    assert (
        f"  {function}: redeployed by another tool: no longer runs the proxy"
        in result.stdout
    )
    assert f"`mless detach {function}` forgets it" in result.stdout
    assert detached.exit_code == 0, detached.output
    assert _state(moto_client, function).handler == "app.v2"


def test_status_lists_attached_functions(stack_name: str, function: str) -> None:
    assert mless("attach", function, "--stack", stack_name).exit_code == 0

    result = mless("status", "--stack", stack_name, "--json")
    mless("detach", function)

    assert result.exit_code == 0, result.output
    attached = json.loads(result.stdout)["attached"]
    assert [(a["function"], a["state"]) for a in attached] == [(function, "attached")]


def test_destroy_refuses_while_a_function_is_attached(
    stack_name: str, function: str
) -> None:
    assert mless("attach", function, "--stack", stack_name).exit_code == 0

    result = mless("destroy", "--stack", stack_name, "--yes")
    mless("detach", function)

    assert result.exit_code == 2
    assert result.stderr == (
        f"mless: Functions {function} are attached to stack {stack_name}; detach "
        "them first with `mless detach`.\n"
    )


def test_detaching_a_function_that_is_not_attached_exits_2(function: str) -> None:
    result = mless("detach", function)

    assert result.exit_code == 2
    assert "is not attached" in result.stderr


def test_a_logical_id_of_a_deployed_template_names_its_function(
    stack_name: str, moto_client: MakeClient, tmp_path: Path
) -> None:
    app = f"app-{uuid.uuid4().hex[:8]}"
    (tmp_path / "template.yaml").write_text(APP_TEMPLATE)
    moto_client("cloudformation").create_stack(
        StackName=app, TemplateBody=APP_TEMPLATE, Capabilities=["CAPABILITY_IAM"]
    )
    physical = moto_client("cloudformation").describe_stack_resource(
        StackName=app, LogicalResourceId="OrdersFunction"
    )["StackResourceDetail"]["PhysicalResourceId"]
    (tmp_path / "mless.yaml").write_text(
        f"stack: {stack_name}\ntemplate: template.yaml\ntemplate_stack: {app}\n"
    )
    before = _state(moto_client, physical)

    attached = mless("attach", "OrdersFunction")
    detached = mless("detach", "OrdersFunction")

    assert attached.exit_code == 0, attached.output
    assert attached.stdout == f"attached {physical}\n"
    assert detached.exit_code == 0, detached.output
    assert _state(moto_client, physical) == before


def test_a_bad_mless_yaml_exits_2_naming_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "mless.yaml").write_text("functions:\n  F:\n    concurrency: lots\n")

    result = mless("attach", "F")

    assert result.exit_code == 2
    assert result.stderr == (
        "mless: mless.yaml: functions.F.concurrency: expected a whole number of "
        "at least 1; got 'lots'.\n"
    )
