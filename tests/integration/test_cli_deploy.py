"""`mless deploy`, `destroy` and `status` through click's runner, against moto's server.

moto's change sets list no resource changes, so a dry run against an
existing stack shows here only what the plan itself knows (its action and
the parameters that change); in AWS the change set adds one line per
resource. moto reports stack-level events only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bridge.cli import main

MakeClient = Callable[..., Any]


@pytest.fixture(autouse=True)
def on_moto(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Send the commands' AWS calls to moto; keep snapshots in the test's folder."""
    monkeypatch.setenv("MLESS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("MLESS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLESS_STACK", raising=False)
    monkeypatch.chdir(tmp_path)


def mless(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments))


def _new_stack_name() -> str:
    return f"mless-cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str) -> dict[str, Any]:
    """A stack deployed once through the CLI, with the outputs it printed."""
    name = _new_stack_name()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLESS_ENDPOINT_URL", moto_endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        result = mless("deploy", "--stack", name, "--json")
    assert result.exit_code == 0, result.output
    outputs: dict[str, Any] = json.loads(result.stdout)
    outputs["_stderr"] = result.stderr
    return outputs


def test_deploy_creates_the_stack_shows_its_events_and_prints_its_outputs(
    deployed: dict[str, Any], moto_client: MakeClient
) -> None:
    name = deployed["stack_name"]

    assert f"stack {name} in us-east-1: create" in deployed["_stderr"]
    assert f"{name} (AWS::CloudFormation::Stack) CREATE_COMPLETE" in deployed["_stderr"]
    assert deployed["name_prefix"] == name
    assert deployed["proxy_function_name"] == f"{name}-proxy"
    stack = moto_client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_second_deploy_changes_nothing(deployed: dict[str, Any]) -> None:
    name = deployed["stack_name"]

    result = mless("deploy", "--stack", name, "--json")

    assert result.exit_code == 0, result.output
    assert f"stack {name} in us-east-1: nothing to do" in result.stderr
    assert "UPDATE" not in result.stderr
    again = json.loads(result.stdout)
    assert again == {k: v for k, v in deployed.items() if k != "_stderr"}


def test_dry_run_of_a_new_stack_lists_its_resources_and_creates_nothing(
    moto_client: MakeClient,
) -> None:
    name = _new_stack_name()

    result = mless("deploy", "--stack", name, "--dry-run")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"stack {name}: create"
    assert "Add RequestQueue (AWS::SQS::Queue)" in lines
    assert "Add ProxyFunction (AWS::Lambda::Function)" in lines
    stacks = moto_client("cloudformation").list_stacks()["StackSummaries"]
    assert name not in {stack["StackName"] for stack in stacks}


def test_dry_run_shows_the_parameters_an_update_would_change(
    deployed: dict[str, Any], moto_client: MakeClient
) -> None:
    name = deployed["stack_name"]

    result = mless("deploy", "--stack", name, "--proxy-memory", "512", "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        f"stack {name}: update",
        "parameter ProxyMemoryMB: 256 -> 512",
    ]
    proxy = moto_client("lambda").get_function_configuration(
        FunctionName=deployed["proxy_function_name"]
    )
    assert proxy["MemorySize"] == 256


def test_deploy_keeps_the_stacks_settings_unless_told(moto_client: MakeClient) -> None:
    name = _new_stack_name()
    first = mless("deploy", "--stack", name, "--proxy-timeout", "60")

    again = mless("deploy", "--stack", name)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.stderr
    proxy = moto_client("lambda").get_function_configuration(
        FunctionName=f"{name}-proxy"
    )
    assert proxy["Timeout"] == 60


def test_status_shows_queue_depths_and_dead_letters(
    deployed: dict[str, Any], moto_client: MakeClient
) -> None:
    moto_client("sqs").send_message(
        QueueUrl=deployed["dead_letter_queue_url"], MessageBody="{}"
    )

    result = mless("status", "--stack", deployed["stack_name"], "--json")

    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["dead_letters"] == 1
    assert status["requests_waiting"] == 0
    assert status["attached"] == []
    assert status["lab_listening"] is False
    assert status["lab"] == "no lab has served this stack yet"
    assert status["proxy_mode"] == "auto"


def test_status_of_a_missing_stack_exits_2_with_one_line(tmp_path: Path) -> None:
    result = mless("status", "--stack", "no-such-stack")

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "mless: The stack 'no-such-stack' does not exist in us-east-1; deploy it "
        "with `mless deploy` or choose another stack name."
    ]


def test_destroy_without_a_terminal_asks_for_yes() -> None:
    name = _new_stack_name()
    assert mless("deploy", "--stack", name).exit_code == 0

    refused = CliRunner().invoke(main, ["destroy", "--stack", name], input="")
    destroyed = mless("destroy", "--stack", name, "--yes")

    assert refused.exit_code == 2
    assert "Pass --yes" in refused.stderr
    assert destroyed.exit_code == 0, destroyed.output
    assert destroyed.stdout.startswith(f"deleted stack {name}")
    assert mless("status", "--stack", name).exit_code == 2


def test_destroy_removes_the_proxy_layer(moto_client: MakeClient) -> None:
    name = _new_stack_name()
    assert mless("deploy", "--stack", name).exit_code == 0
    lambda_client = moto_client("lambda")
    assert lambda_client.list_layer_versions(LayerName=f"{name}-proxy")["LayerVersions"]

    result = mless("destroy", "--stack", name, "--yes")

    assert result.exit_code == 0, result.output
    assert (
        lambda_client.list_layer_versions(LayerName=f"{name}-proxy")["LayerVersions"]
        == []
    )


def test_no_credentials_is_one_clear_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    # Without this, boto3 would ask the EC2 instance metadata service.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)

    result = mless("status")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "mless: No AWS credentials were found: run `aws configure`, set "
        "AWS_PROFILE or pass --profile."
    ]


def test_no_region_against_aws_is_one_clear_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    # AWS itself: no endpoint of the local cloud's, which has a region of
    # its own.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "MLESS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)

    result = mless("status")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "mless: No AWS region is set: pass --region or set AWS_REGION."
    ]


def test_an_unreachable_endpoint_is_one_clear_line_and_exit_1() -> None:
    # Port 9 (discard) on loopback: nothing listens there on a test machine.
    result = mless("status", "--endpoint-url", "http://127.0.0.1:9")

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        'mless: Could not connect to the endpoint URL: "http://127.0.0.1:9/". '
    )
    assert "--endpoint-url names a running endpoint" in lines[0]


def test_debug_adds_the_traceback() -> None:
    result = mless("--debug", "status", "--stack", "no-such-stack")

    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
