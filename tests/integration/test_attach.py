"""Attaching deployed functions to the proxy and detaching them, against moto's server.

What moto does not do, and so these tests cannot show:
- it applies a configuration change at once (LastUpdateStatus is Successful
  straight away), so waiting for Lambda to apply one is never exercised;
- it checks no RevisionId, no 4 KB limit on environment variables, and no
  permission to use a layer; it enforces no IAM policy, so that the
  attached function's role can reach the queues is shown by the policy being
  attached, not by a denied call;
- it runs no function code: the end-to-end test below goes through the local
  cloud's Lambda stand-in, which runs `lambda_proxy` from the lab's own
  interpreter rather than from the proxy's layer as Lambda would.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.attach import Attacher
from bridge.deploy import deploy_stack
from bridge.errors import AttachError, ConfigurationError
from bridge.function_configuration import PROXY_HANDLER, AttachmentState
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud
from bridge.run_attachments import attached_while_running, recover_stale
from bridge.snapshots import SNAPSHOT_TAG, FunctionState, LocalSnapshots, Session
from bridge.stack import StackOutputs, StackSettings

MakeClient = Callable[..., Any]


class MotoClients:
    """The clients factory an Attacher takes, bound to the session's moto server."""

    def __init__(self, moto_client: MakeClient) -> None:
        self._make = moto_client

    def client(self, service: str) -> Any:
        return self._make(service)


@pytest.fixture(scope="module")
def stack(moto_client: MakeClient) -> StackOutputs:
    """A stack of its own for this module, its proxy layer published."""
    name = f"mless-attach-{uuid.uuid4().hex[:8]}"
    return deploy_stack(
        moto_client("cloudformation"),
        moto_client("s3"),
        moto_client("sts"),
        stack_name=name,
        settings=StackSettings(name_prefix=name),
        sleep=lambda seconds: None,
        lambda_client=moto_client("lambda"),
    )


@pytest.fixture
def attacher(moto_client: MakeClient, tmp_path: Path) -> Attacher:
    return Attacher(MotoClients(moto_client), LocalSnapshots(tmp_path / "snapshots"))


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@dataclass
class Deployed:
    """A function deployed as another tool would, with a role and a layer."""

    name: str
    role_name: str
    layer_arn: str


def _create_role(moto_client: MakeClient, role_name: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return str(
        moto_client("iam").create_role(
            RoleName=role_name,
            Path="/service-role/",
            AssumeRolePolicyDocument=json.dumps(trust),
        )["Role"]["Arn"]
    )


@pytest.fixture
def deploy_function(moto_client: MakeClient) -> Callable[..., Deployed]:
    """Deploy a Node.js function with a layer, variables, timeout and memory."""

    def deploy(role_name: str | None = None, layers: int = 1) -> Deployed:
        suffix = uuid.uuid4().hex[:8]
        lambda_client = moto_client("lambda")
        role_name = role_name or f"app-role-{suffix}"
        try:
            role_arn = _create_role(moto_client, role_name)
        except lambda_client.exceptions.ClientError:
            role_arn = moto_client("iam").get_role(RoleName=role_name)["Role"]["Arn"]
        layer_arns = [
            lambda_client.publish_layer_version(
                LayerName=f"libs-{suffix}-{index}",
                Content={"ZipFile": _zip({"nodejs/node_modules/x/index.js": ""})},
            )["LayerVersionArn"]
            for index in range(layers)
        ]
        name = f"app-{suffix}"
        lambda_client.create_function(
            FunctionName=name,
            Runtime="nodejs20.x",
            Role=role_arn,
            Handler="index.handler",
            Code={"ZipFile": _zip({"index.js": "exports.handler = async () => 1;"})},
            Layers=layer_arns,
            Timeout=7,
            MemorySize=256,
            Environment={"Variables": {"GREETING": "hello", "TABLE": "orders"}},
        )
        return Deployed(name, role_name, layer_arns[0] if layer_arns else "")

    return deploy


def _configuration(moto_client: MakeClient, name: str) -> dict[str, Any]:
    return dict(moto_client("lambda").get_function_configuration(FunctionName=name))


def _role_policies(moto_client: MakeClient, role_name: str) -> list[str]:
    attached = moto_client("iam").list_attached_role_policies(RoleName=role_name)
    return sorted(policy["PolicyArn"] for policy in attached["AttachedPolicies"])


def test_attach_runs_the_proxy_with_the_functions_own_code_and_variables(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    before = _configuration(moto_client, function.name)

    attacher.attach(attacher.plan_attach(function.name, stack))

    after = _configuration(moto_client, function.name)
    assert (after["Handler"], after["Runtime"]) == (PROXY_HANDLER, "python3.12")
    assert after["CodeSha256"] == before["CodeSha256"]
    layers = [layer["Arn"] for layer in after["Layers"]]
    assert layers[0] == function.layer_arn
    assert layers[1].startswith(
        f"arn:aws:lambda:us-east-1:123456789012:layer:{stack.name_prefix}-proxy:"
    )
    variables = after["Environment"]["Variables"]
    assert variables["GREETING"] == "hello"
    assert variables["MLESS_REQUEST_QUEUE_URL"] == stack.request_queue_url
    assert variables["MLESS_REPLY_QUEUE_PREFIX"] == stack.reply_queue_prefix
    assert after["Timeout"] == 7
    assert stack.proxy_access_policy_arn in _role_policies(
        moto_client, function.role_name
    )


def test_the_snapshot_is_kept_here_and_in_aws_with_a_tag_pointing_to_it(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    before = FunctionState.of(_configuration(moto_client, function.name))

    snapshot = attacher.attach(attacher.plan_attach(function.name, stack))

    arn = snapshot.function_arn
    tags = moto_client("lambda").list_tags(Resource=arn)["Tags"]
    assert tags[SNAPSHOT_TAG] == f"s3://{stack.code_bucket}/{snapshot.key}"
    assert len(tags[SNAPSHOT_TAG]) <= 256
    body = moto_client("s3").get_object(Bucket=stack.code_bucket, Key=snapshot.key)
    stored = json.loads(body["Body"].read())
    assert FunctionState.from_json(stored["state"]) == before
    local = attacher.snapshots.local.load(snapshot.account_region, function.name)
    assert local is not None and local.state == before
    path = attacher.snapshots.local.root / snapshot.account_region
    assert oct((path / f"{function.name}.json").stat().st_mode & 0o777) == "0o600"


def test_attach_then_detach_restores_the_configuration_field_by_field(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function(layers=2)
    before = _configuration(moto_client, function.name)
    policies_before = _role_policies(moto_client, function.role_name)
    snapshot = attacher.attach(
        attacher.plan_attach(function.name, stack, timeout_seconds=900)
    )
    assert _configuration(moto_client, function.name)["Timeout"] == 900

    report = attacher.detach(attacher.plan_detach(function.name))

    after = _configuration(moto_client, function.name)
    assert report.exact and report.restored, report
    for field in ("Handler", "Runtime", "Layers", "Environment", "Timeout"):
        assert after.get(field) == before.get(field), field
    assert after["MemorySize"] == before["MemorySize"]
    assert after["CodeSha256"] == before["CodeSha256"]
    assert FunctionState.of(after) == snapshot.state
    assert _role_policies(moto_client, function.role_name) == policies_before
    assert SNAPSHOT_TAG not in moto_client("lambda").list_tags(
        Resource=snapshot.function_arn
    ).get("Tags", {})
    listed = moto_client("s3").list_objects_v2(
        Bucket=stack.code_bucket, Prefix=snapshot.key
    )
    assert listed.get("KeyCount", 0) == 0
    assert attacher.snapshots.local.load(snapshot.account_region, function.name) is None


def test_a_function_without_variables_or_layers_is_restored_without_them(
    attacher: Attacher,
    stack: StackOutputs,
    moto_client: MakeClient,
) -> None:
    name = f"bare-{uuid.uuid4().hex[:8]}"
    moto_client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=_create_role(moto_client, f"bare-role-{name}"),
        Handler="app.handler",
        Code={"ZipFile": _zip({"app.py": "def handler(e, c): return 1\n"})},
    )
    before = FunctionState.of(_configuration(moto_client, name))
    attacher.attach(attacher.plan_attach(name, stack))

    report = attacher.detach(attacher.plan_detach(name))

    after = _configuration(moto_client, name)
    assert report.exact, report
    assert FunctionState.of(after) == before
    assert "Environment" not in after or not after["Environment"].get("Variables")
    assert not after.get("Layers")


def test_detach_finds_the_snapshot_in_aws_when_this_machines_copy_is_lost(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
    tmp_path: Path,
) -> None:
    function = deploy_function()
    before = FunctionState.of(_configuration(moto_client, function.name))
    attacher.attach(attacher.plan_attach(function.name, stack))
    other_machine = Attacher(
        MotoClients(moto_client), LocalSnapshots(tmp_path / "another-machine")
    )

    report = other_machine.detach(other_machine.plan_detach(function.name))

    assert report.exact, report
    assert FunctionState.of(_configuration(moto_client, function.name)) == before


def _ended_session() -> Session:
    """The session of a process that has ended on this host."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return Session(Session.current().host, process.pid)


def test_a_crash_between_attach_and_detach_is_recovered_on_the_next_start(
    moto_client: MakeClient,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    tmp_path: Path,
) -> None:
    function = deploy_function()
    before = FunctionState.of(_configuration(moto_client, function.name))
    local = LocalSnapshots(tmp_path / "snapshots")
    crashed = Attacher(MotoClients(moto_client), local)
    crashed.attach(crashed.plan_attach(function.name, stack, session=_ended_session()))

    restarted = Attacher(MotoClients(moto_client), LocalSnapshots(local.root))
    said: list[str] = []
    stale = restarted.stale(stack)
    reports = recover_stale(
        restarted, stack, keep=[], confirm=lambda snapshot: True, say=said.append
    )

    assert [s.function_name for s in stale] == [function.name]
    assert [r.function_name for r in reports] == [function.name]
    assert reports[0].exact
    assert FunctionState.of(_configuration(moto_client, function.name)) == before
    assert any("was left attached" in line for line in said)
    assert restarted.stale(stack) == []


def test_a_function_attached_by_a_run_still_going_is_not_stale(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
) -> None:
    function = deploy_function()
    attacher.attach(
        attacher.plan_attach(function.name, stack, session=Session.current())
    )
    try:
        assert attacher.stale(stack) == []
    finally:
        attacher.detach(attacher.plan_detach(function.name))


def test_declining_the_restore_leaves_the_function_attached(
    moto_client: MakeClient,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    attacher: Attacher,
) -> None:
    function = deploy_function()
    attacher.attach(
        attacher.plan_attach(function.name, stack, session=_ended_session())
    )
    said: list[str] = []

    reports = recover_stale(
        attacher, stack, keep=[], confirm=lambda snapshot: False, say=said.append
    )

    assert reports == []
    assert _configuration(moto_client, function.name)["Handler"] == PROXY_HANDLER
    assert any("stays attached" in line for line in said)
    attacher.detach(attacher.plan_detach(function.name))


def test_a_function_redeployed_by_another_tool_is_reported_and_left_as_deployed(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    snapshot = attacher.attach(attacher.plan_attach(function.name, stack))
    moto_client("lambda").update_function_configuration(
        FunctionName=function.name,
        Handler="index.v2",
        Runtime="nodejs22.x",
        Layers=[],
        Environment={"Variables": {"GREETING": "v2"}},
    )
    redeployed = FunctionState.of(_configuration(moto_client, function.name))

    state = attacher.state_of(snapshot)
    report = attacher.detach(attacher.plan_detach(function.name))

    assert state is AttachmentState.REDEPLOYED
    assert not report.restored
    assert any("redeployed" in note for note in report.notes)
    assert FunctionState.of(_configuration(moto_client, function.name)) == redeployed
    assert stack.proxy_access_policy_arn not in _role_policies(
        moto_client, function.role_name
    )


def test_functions_sharing_a_role_keep_the_policy_until_the_last_detach(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    first = deploy_function()
    second = deploy_function(role_name=first.role_name)
    attacher.attach(attacher.plan_attach(first.name, stack))
    second_plan = attacher.plan_attach(second.name, stack)
    attacher.attach(second_plan)

    attacher.detach(attacher.plan_detach(first.name))
    kept = _role_policies(moto_client, first.role_name)
    attacher.detach(attacher.plan_detach(second.name))

    assert not second_plan.grant_policy
    assert stack.proxy_access_policy_arn in kept
    assert _role_policies(moto_client, first.role_name) == []


def test_a_policy_on_the_role_before_attaching_stays_after_detaching(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    moto_client("iam").attach_role_policy(
        RoleName=function.role_name, PolicyArn=stack.proxy_access_policy_arn
    )

    plan = attacher.plan_attach(function.name, stack)
    attacher.attach(plan)
    attacher.detach(attacher.plan_detach(function.name))

    assert not plan.grant_policy
    assert _role_policies(moto_client, function.role_name) == [
        stack.proxy_access_policy_arn
    ]


def test_attaching_twice_changes_nothing_the_second_time(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    first = attacher.attach(attacher.plan_attach(function.name, stack))
    attached = _configuration(moto_client, function.name)

    again = attacher.plan_attach(function.name, stack)
    attacher.attach(again)

    assert again.already_attached and again.previous == first
    after = _configuration(moto_client, function.name)
    assert FunctionState.of(after) == FunctionState.of(attached)
    report = attacher.detach(attacher.plan_detach(function.name))
    assert report.exact


def test_a_failed_switch_undoes_the_grant_and_the_snapshot(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    before = FunctionState.of(_configuration(moto_client, function.name))
    plan = attacher.plan_attach(function.name, stack)
    # The function's own layer disappears after planning: Lambda (and moto)
    # refuse a configuration that names it.
    lambda_client = moto_client("lambda")
    layer_name, version = function.layer_arn.rsplit(":", 2)[-2:]
    lambda_client.delete_layer_version(LayerName=layer_name, VersionNumber=int(version))

    with pytest.raises(Exception, match="UpdateFunctionConfiguration"):
        attacher.attach(plan)

    assert FunctionState.of(_configuration(moto_client, function.name)) == before
    assert _role_policies(moto_client, function.role_name) == []
    assert (
        attacher.snapshots.local.load(plan.snapshot.account_region, function.name)
        is None
    )
    tags = lambda_client.list_tags(Resource=plan.snapshot.function_arn).get("Tags", {})
    assert SNAPSHOT_TAG not in tags


def test_a_layer_deleted_while_attached_is_reported_by_the_detach(
    attacher: Attacher,
    stack: StackOutputs,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function(layers=2)
    before = FunctionState.of(_configuration(moto_client, function.name))
    attacher.attach(attacher.plan_attach(function.name, stack))
    layer_name, version = function.layer_arn.rsplit(":", 2)[-2:]
    moto_client("lambda").delete_layer_version(
        LayerName=layer_name, VersionNumber=int(version)
    )

    report = attacher.detach(attacher.plan_detach(function.name))

    after = FunctionState.of(_configuration(moto_client, function.name))
    assert report.restored and not report.exact
    assert report.problems == (
        f"layer {function.layer_arn} was deleted while the function was attached; "
        "Lambda cannot add it back",
    )
    assert [d.split(":")[0] for d in report.differences] == ["layers"]
    assert after.layers == before.layers[1:]
    assert (after.handler, after.environment) == (before.handler, before.environment)
    assert any("the snapshot is kept at" in note for note in report.notes)


def test_a_function_with_five_layers_cannot_take_the_proxys(
    attacher: Attacher, stack: StackOutputs, deploy_function: Callable[..., Deployed]
) -> None:
    function = deploy_function(layers=5)

    with pytest.raises(AttachError, match="5 layers"):
        attacher.plan_attach(function.name, stack)


def test_detaching_a_function_that_is_not_attached_says_so(
    attacher: Attacher, deploy_function: Callable[..., Deployed]
) -> None:
    function = deploy_function()

    with pytest.raises(ConfigurationError, match="is not attached"):
        attacher.plan_detach(function.name)


def test_attaching_a_missing_function_says_so(
    attacher: Attacher, stack: StackOutputs
) -> None:
    with pytest.raises(AttachError, match="no such function"):
        attacher.plan_attach("does-not-exist", stack)


# --- End to end on the local cloud ---------------------------------------------

HANDLER_SOURCE = """\
import os

def handler(event, context):
    return {
        "event": event,
        "greeting": os.environ.get("GREETING"),
        "mless_variables": sorted(k for k in os.environ if k.startswith("MLESS_")),
    }
"""


def test_an_attached_function_runs_in_the_lab_and_is_restored_afterwards(
    local_cloud: LocalCloud, lab_log: Any, tmp_path: Path
) -> None:
    clients = local_cloud.clients
    lambda_client = clients.client("lambda")
    code = _zip({"app.py": HANDLER_SOURCE})
    # The stand-in runs code found by its hash in the code bucket.
    key = f"test/{uuid.uuid4().hex}.zip"
    clients.client("s3").put_object(Bucket=local_cloud.code_bucket, Key=key, Body=code)
    name = f"attached-{uuid.uuid4().hex[:8]}"
    role_arn = _create_role(lambda *a: clients.client(a[0]), f"role-{name}")
    lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": code},
        Timeout=5,
        Environment={"Variables": {"GREETING": "hi"}},
    )
    before = FunctionState.of(
        lambda_client.get_function_configuration(FunctionName=name)
    )
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "app.py").write_text(HANDLER_SOURCE)
    attacher = Attacher(clients, LocalSnapshots(tmp_path / "snapshots"))
    said: list[str] = []

    with attached_while_running(
        attacher, local_cloud.stack, [name], timeout_seconds=None, say=said.append
    ):
        settings = FunctionSettings(name, "app.handler", code_dir)
        with Lab(
            clients.client("sqs"),
            local_cloud.queues,
            [settings],
            lab_log,
            endpoint_url=local_cloud.endpoint_url,
            poll_wait_seconds=1,
        ):
            result = local_cloud.lambda_service.invoke(name, b'{"n": 1}')

    assert result.function_error is None, result.payload
    assert json.loads(result.payload) == {
        "event": {"n": 1},
        "greeting": "hi",
        "mless_variables": [],
    }
    assert said[0] == f"attached {name}"
    assert said[-1] == f"detached {name}: restored exactly"
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert FunctionState.of(after) == before
    clients.client("s3").delete_object(Bucket=local_cloud.code_bucket, Key=key)


def test_the_lab_serves_at_most_the_functions_reserved_concurrency(
    attacher: Attacher,
    deploy_function: Callable[..., Deployed],
    moto_client: MakeClient,
) -> None:
    function = deploy_function()
    moto_client("lambda").put_function_concurrency(
        FunctionName=function.name, ReservedConcurrentExecutions=3
    )
    unreserved = deploy_function()

    assert attacher.deployed(function.name).reserved_concurrency == 3
    assert attacher.deployed(unreserved.name).reserved_concurrency is None
