"""Deploying, reading and destroying the mless stack against moto's server.

What moto does not do, and so these tests cannot show: it skips
AWS::SQS::QueuePolicy and AWS::S3::BucketPolicy (the TLS-only policies), the
bucket's lifecycle rule and public access block, and AWS-managed policy ARNs;
it reports stack-level events only, never per resource; it does not check
parameter constraints, nor that the proxy's package exists. Those parts are
checked by cfn-lint in tests/unit/test_templates.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.deploy import (
    DeployAction,
    DeployPlan,
    apply_deploy,
    deploy_stack,
    ensure_code_bucket,
    plan_deploy,
)
from bridge.errors import StackNotFoundError
from bridge.packaging import build_proxy_zip, code_key
from bridge.stack import StackOutputs, StackSettings, read_stack_outputs
from bridge.teardown import destroy_stack

MakeClient = Callable[..., Any]
HASH_TEMPLATE = Path(__file__).resolve().parents[2] / "examples/hash/template.yaml"


@dataclasses.dataclass
class Deployed:
    """A stack deployed for one test, under a name no other test uses."""

    outputs: StackOutputs
    events: list[str]


def _deploy(moto_client: MakeClient, **settings: Any) -> Deployed:
    name = f"mless-test-{uuid.uuid4().hex[:8]}"
    events: list[str] = []
    outputs = deploy_stack(
        moto_client("cloudformation"),
        moto_client("s3"),
        moto_client("sts"),
        stack_name=name,
        settings=StackSettings(name_prefix=name, **settings),
        on_event=events.append,
        sleep=lambda seconds: None,
    )
    return Deployed(outputs, events)


@pytest.fixture(scope="module")
def deployed(moto_client: MakeClient) -> Deployed:
    """One stack shared by the tests that only read it."""
    return _deploy(moto_client)


def _plan_again(
    moto_client: MakeClient, outputs: StackOutputs, **settings: Any
) -> DeployPlan:
    return plan_deploy(
        moto_client("cloudformation"),
        moto_client("s3"),
        stack_name=outputs.stack_name,
        code_bucket=outputs.code_bucket,
        code=build_proxy_zip(),
        settings=StackSettings(name_prefix=outputs.name_prefix, **settings),
    )


def test_deploy_creates_the_stack_and_returns_its_outputs(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    outputs = deployed.outputs
    prefix = outputs.name_prefix
    queue_name = outputs.request_queue_arn.rsplit(":", 1)[1]
    assert outputs.request_queue_url.endswith(f"/{queue_name}")
    assert outputs.reply_queue_prefix == f"{prefix}-reply-"
    assert outputs.proxy_function_name == f"{prefix}-proxy"
    assert outputs.lab_policy_arn.startswith("arn:aws:iam::")
    assert outputs.code_key == code_key(build_proxy_zip())
    cloudformation = moto_client("cloudformation")
    assert read_stack_outputs(cloudformation, outputs.stack_name) == outputs


def test_deploy_reports_the_stack_events(deployed: Deployed) -> None:
    # moto records stack-level events only; AWS adds one per resource.
    name = deployed.outputs.stack_name
    assert deployed.events[-1] == f"{name} (AWS::CloudFormation::Stack) CREATE_COMPLETE"


def test_second_deploy_plans_nothing_and_changes_nothing(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    lambda_client = moto_client("lambda")
    name = deployed.outputs.proxy_function_name
    before = lambda_client.get_function_configuration(FunctionName=name)

    plan = _plan_again(moto_client, deployed.outputs)
    events: list[str] = []
    outputs = apply_deploy(
        plan, moto_client("cloudformation"), moto_client("s3"), on_event=events.append
    )

    assert (plan.action, plan.upload_code) == (DeployAction.NONE, False)
    assert outputs == deployed.outputs
    assert events == []
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["LastModified"] == before["LastModified"]


def test_update_without_changes_is_not_an_error(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    # CloudFormation answers such an update with a ValidationError.
    plan = _plan_again(moto_client, deployed.outputs)
    forced = dataclasses.replace(plan, action=DeployAction.UPDATE)

    outputs = apply_deploy(forced, moto_client("cloudformation"), moto_client("s3"))

    assert outputs == deployed.outputs


def test_proxy_function_runs_the_proxy_handler_with_the_stacks_settings(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    outputs = deployed.outputs
    configuration = moto_client("lambda").get_function_configuration(
        FunctionName=outputs.proxy_function_name
    )

    assert configuration["FunctionArn"] == outputs.proxy_function_arn
    assert configuration["Role"] == outputs.proxy_role_arn
    assert configuration["Handler"] == "lambda_proxy.handler.handler"
    assert configuration["Runtime"] == "python3.12"
    assert (configuration["Timeout"], configuration["MemorySize"]) == (30, 256)
    assert configuration["Environment"]["Variables"] == {
        "MLESS_REQUEST_QUEUE_URL": outputs.request_queue_url,
        "MLESS_REPLY_QUEUE_PREFIX": outputs.reply_queue_prefix,
        "MLESS_PAYLOAD_BUCKET": outputs.payload_bucket_name,
        "MLESS_MODE": "auto",
    }


def test_two_stacks_deployed_with_default_settings_keep_their_proxies_apart(
    moto_client: MakeClient,
) -> None:
    names = [f"mless-apart-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    outputs = [
        deploy_stack(
            moto_client("cloudformation"),
            moto_client("s3"),
            moto_client("sts"),
            stack_name=name,
            sleep=lambda seconds: None,
        )
        for name in names
    ]

    assert [o.proxy_function_name for o in outputs] == [f"{n}-proxy" for n in names]
    assert [o.reply_queue_prefix for o in outputs] == [f"{n}-reply-" for n in names]
    for stack in outputs:
        variables = moto_client("lambda").get_function_configuration(
            FunctionName=stack.proxy_function_name
        )["Environment"]["Variables"]
        assert variables["MLESS_REQUEST_QUEUE_URL"] == stack.request_queue_url


def test_request_queue_is_encrypted_and_redrives_to_the_dead_letter_queue(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    outputs = deployed.outputs
    attributes = moto_client("sqs").get_queue_attributes(
        QueueUrl=outputs.request_queue_url, AttributeNames=["All"]
    )["Attributes"]

    assert attributes["SqsManagedSseEnabled"] == "true"
    assert attributes["MaximumMessageSize"] == "1048576"
    assert attributes["MessageRetentionPeriod"] == "345600"
    assert attributes["VisibilityTimeout"] == "30"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": outputs.dead_letter_queue_arn,
        "maxReceiveCount": 5,
    }


def test_payload_bucket_is_encrypted(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    encryption = moto_client("s3").get_bucket_encryption(
        Bucket=deployed.outputs.payload_bucket_name
    )["ServerSideEncryptionConfiguration"]

    default = encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "AES256"


def test_changed_settings_update_the_stack(moto_client: MakeClient) -> None:
    outputs = _deploy(moto_client).outputs

    plan = _plan_again(moto_client, outputs, proxy_memory_mb=512)
    events: list[str] = []
    apply_deploy(
        plan, moto_client("cloudformation"), moto_client("s3"), on_event=events.append
    )

    assert plan.action is DeployAction.UPDATE
    assert events[-1].endswith("(AWS::CloudFormation::Stack) UPDATE_COMPLETE")
    configuration = moto_client("lambda").get_function_configuration(
        FunctionName=outputs.proxy_function_name
    )
    assert configuration["MemorySize"] == 512


def test_destroy_removes_the_stack_and_its_reply_queues(
    moto_client: MakeClient,
) -> None:
    outputs = _deploy(moto_client).outputs
    sqs, s3 = moto_client("sqs"), moto_client("s3")
    prefix = outputs.reply_queue_prefix
    reply_urls = [
        sqs.create_queue(QueueName=f"{prefix}{uuid.uuid4().hex}")["QueueUrl"]
        for _ in range(2)
    ]
    # Not "<prefix><hex>": not a reply queue, though it shares the prefix.
    other_url = sqs.create_queue(QueueName=f"{prefix}notes")["QueueUrl"]
    s3.put_object(Bucket=outputs.payload_bucket_name, Key="body", Body=b"{}")

    deleted = destroy_stack(
        moto_client("cloudformation"),
        sqs,
        s3,
        stack_name=outputs.stack_name,
        sleep=lambda seconds: None,
    )

    assert sorted(deleted) == sorted(reply_urls)
    remaining = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert remaining == [other_url]
    with pytest.raises(StackNotFoundError):
        read_stack_outputs(moto_client("cloudformation"), outputs.stack_name)


def test_missing_stack_is_reported_by_name_and_region(
    moto_client: MakeClient,
) -> None:
    with pytest.raises(StackNotFoundError, match=r"'no-such-stack'.*us-east-1"):
        read_stack_outputs(moto_client("cloudformation"), "no-such-stack")


def test_code_bucket_is_created_once_per_account_and_region(
    moto_client: MakeClient,
) -> None:
    sts = moto_client("sts")
    account = sts.get_caller_identity()["Account"]

    first = ensure_code_bucket(moto_client("s3"), sts, "us-east-1")
    again = ensure_code_bucket(moto_client("s3"), sts, "us-east-1")
    # Outside us-east-1 the region must be given as the location constraint.
    elsewhere = ensure_code_bucket(moto_client("s3", "eu-west-1"), sts, "eu-west-1")

    assert first == again == f"mless-artifacts-{account}-us-east-1"
    location = moto_client("s3", "eu-west-1").get_bucket_location(Bucket=elsewhere)
    assert location["LocationConstraint"] == "eu-west-1"


def test_proxy_zip_is_the_same_bytes_in_another_process() -> None:
    build = "import sys; from bridge.packaging import build_proxy_zip as b; "
    other = subprocess.run(
        [sys.executable, "-c", build + "sys.stdout.buffer.write(b())"],
        capture_output=True,
        check=True,
    ).stdout

    assert build_proxy_zip() == other


def test_proxy_zip_holds_the_proxy_package_in_a_fixed_order() -> None:
    with zipfile.ZipFile(io.BytesIO(build_proxy_zip())) as archive:
        entries = archive.infolist()
    names = [entry.filename for entry in entries]

    assert "lambda_proxy/wire.py" in names
    assert names == sorted(names)
    assert all(name.startswith("lambda_proxy/") for name in names)
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}


def test_hash_example_deploys_against_the_stacks_outputs(
    deployed: Deployed, moto_client: MakeClient
) -> None:
    # moto ignores the bucket's NotificationConfiguration, so this shows the
    # wiring of parameters, permission and role policy, not a delivered event.
    outputs = deployed.outputs
    cloudformation = moto_client("cloudformation")
    name = f"{outputs.stack_name}-hash"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=HASH_TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[
            {
                "ParameterKey": "ProxyFunctionArn",
                "ParameterValue": outputs.proxy_function_arn,
            },
            {"ParameterKey": "ProxyRoleArn", "ParameterValue": outputs.proxy_role_arn},
            {"ParameterKey": "BucketNamePrefix", "ParameterValue": name},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    bucket = stack["Outputs"][0]["OutputValue"]

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert bucket == f"{name}-123456789012-us-east-1"
    permissions = moto_client("lambda").get_policy(
        FunctionName=outputs.proxy_function_name
    )["Policy"]
    source_arns = [
        statement["Condition"]["ArnLike"]["AWS:SourceArn"]
        for statement in json.loads(permissions)["Statement"]
    ]
    assert f"arn:aws:s3:::{bucket}" in source_arns
    role = outputs.proxy_role_arn.rsplit("/", 1)[1]
    role_policies = moto_client("iam").list_role_policies(RoleName=role)
    assert f"{name}-hash-bucket" in role_policies["PolicyNames"]
