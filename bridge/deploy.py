"""Deploying the mless stack: plan what would change, then apply the plan.

`plan_deploy` only reads: the stack's state, template and parameters,
whether the proxy's packages are already in the code bucket, and whether the
proxy's layer has a version with this code. `apply_deploy` carries a plan
out: it uploads the packages and publishes the layer if needed, creates or
updates the stack, and waits while reporting the stack's events. Deploying
the same code and settings twice plans nothing the second time.

The layer (`<NamePrefix>-proxy`, used by `mless attach`) is published with
Lambda's API rather than by the template: moto's CloudFormation, which the
local cloud runs on, answers a reference to a layer version with no ARN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from bridge.errors import AwsError, calling_aws, error_code
from bridge.packaging import build_proxy_layer_zip, build_proxy_zip, code_key, layer_key
from bridge.proxy_layer import find_proxy_layer, proxy_layer_name, publish_proxy_layer
from bridge.stack import (
    StackOutputs,
    StackSettings,
    current_parameters,
    describe_stack,
    read_stack_outputs,
    read_template,
)
from bridge.stack_events import EventCallback, Sleep, latest_event_ids, wait_for_stack

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_sts import STSClient

logger = logging.getLogger(__name__)

# The template's role and policy take generated names, which needs only this.
CAPABILITIES: list[CapabilityType] = ["CAPABILITY_IAM"]
_SETTLED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_NO_UPDATES = "No updates are to be performed"


class DeployAction(Enum):
    """What a deploy does to the stack."""

    CREATE = "create"
    UPDATE = "update"
    NONE = "nothing to do"


@dataclass(frozen=True)
class DeployPlan:
    """What `apply_deploy` will do, as decided by `plan_deploy`."""

    action: DeployAction
    stack_name: str
    parameters: Mapping[str, str]
    code_bucket: str
    code_key: str
    upload_code: bool
    template_body: str = field(repr=False)
    code: bytes = field(repr=False)
    layer: bytes = field(default=b"", repr=False)
    publish_layer: bool = False
    current_parameters: Mapping[str, str] = field(default_factory=dict)
    template_changed: bool = False

    @property
    def nothing_to_do(self) -> bool:
        """Whether applying this plan would change nothing at all."""
        return self.action is DeployAction.NONE and not (
            self.upload_code or self.publish_layer
        )

    @property
    def layer_key(self) -> str:
        """Where the proxy's layer package goes in the code bucket."""
        return layer_key(self.code_key)


def code_bucket_name(account_id: str, region: str) -> str:
    """Return the name of the bucket that holds the proxy's packages."""
    return f"mless-artifacts-{account_id}-{region}"


def ensure_code_bucket(s3: S3Client, sts: STSClient, region: str) -> str:
    """Return the code bucket's name, creating the bucket if it does not exist."""
    with calling_aws("the caller's identity"):
        account_id = sts.get_caller_identity()["Account"]
    bucket = code_bucket_name(account_id, region)
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account_id)
        return bucket
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchBucket"}:
            raise AwsError(
                "HeadBucket",
                f"bucket {bucket}",
                f"{error_code(exc)}; the name may belong to another account.",
            ) from exc

    logger.debug("creating the code bucket %s", bucket)
    try:
        # New buckets block public access and encrypt objects by default.
        if region == "us-east-1":
            # The one region S3 refuses as an explicit LocationConstraint.
            s3.create_bucket(Bucket=bucket)
        else:
            location = cast("BucketLocationConstraintType", region)
            s3.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": location},
            )
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise AwsError.from_client_error(exc, f"bucket {bucket}") from exc
    return bucket


def plan_deploy(
    cloudformation: CloudFormationClient,
    s3: S3Client,
    *,
    stack_name: str,
    code_bucket: str,
    code: bytes,
    settings: StackSettings | None = None,
    template_body: str | None = None,
    layer: bytes | None = None,
    lambda_client: LambdaClient | None = None,
) -> DeployPlan:
    """Decide what deploying this package and these settings would change.

    Without `settings`, the defaults, with the stack's name as the prefix of
    the proxy function's and reply queues' names (as `mless deploy` does), so
    that two stacks in one account and region do not claim the same names.
    `layer` is the proxy's layer package; by default it is built from the
    installed proxy, as `code` usually is. Without `lambda_client` the plan
    leaves the proxy's layer as it is.
    """
    template_body = read_template() if template_body is None else template_body
    layer = build_proxy_layer_zip() if layer is None else layer
    key = code_key(code)
    settings = settings or StackSettings(name_prefix=stack_name)
    parameters = settings.parameters(code_bucket, key)
    stack = describe_stack(cloudformation, stack_name)
    current: dict[str, str] = {}
    template_changed = True
    if stack is None:
        action = DeployAction.CREATE
    else:
        _check_updatable(stack)
        current = current_parameters(stack)
        template_changed = (
            _current_template(cloudformation, stack_name) != template_body
        )
        unchanged = current == parameters and not template_changed
        action = DeployAction.NONE if unchanged else DeployAction.UPDATE
    layer_name = proxy_layer_name(parameters["NamePrefix"])
    return DeployPlan(
        action=action,
        stack_name=stack_name,
        parameters=parameters,
        code_bucket=code_bucket,
        code_key=key,
        upload_code=not (
            _object_exists(s3, code_bucket, key)
            and _object_exists(s3, code_bucket, layer_key(key))
        ),
        template_body=template_body,
        code=code,
        layer=layer,
        publish_layer=lambda_client is not None
        and find_proxy_layer(lambda_client, layer_name, key) is None,
        current_parameters=current,
        template_changed=template_changed,
    )


def apply_deploy(
    plan: DeployPlan,
    cloudformation: CloudFormationClient,
    s3: S3Client,
    *,
    on_event: EventCallback | None = None,
    sleep: Sleep = time.sleep,
    lambda_client: LambdaClient | None = None,
) -> StackOutputs:
    """Carry out a deploy plan, wait for the stack to settle, return its outputs."""
    if plan.upload_code:
        with calling_aws(f"s3://{plan.code_bucket}/{plan.code_key}"):
            s3.put_object(Bucket=plan.code_bucket, Key=plan.code_key, Body=plan.code)
        with calling_aws(f"s3://{plan.code_bucket}/{plan.layer_key}"):
            s3.put_object(Bucket=plan.code_bucket, Key=plan.layer_key, Body=plan.layer)
    if plan.publish_layer and lambda_client is not None:
        arn = publish_proxy_layer(
            lambda_client,
            plan.parameters["NamePrefix"],
            plan.code_bucket,
            plan.code_key,
        )
        if on_event is not None:
            on_event(f"{arn} (AWS::Lambda::LayerVersion) published")
    if plan.action is DeployAction.CREATE:
        _create_stack(plan, cloudformation, on_event, sleep)
    elif plan.action is DeployAction.UPDATE:
        _update_stack(plan, cloudformation, on_event, sleep)
    return read_stack_outputs(cloudformation, plan.stack_name)


def deploy_stack(
    cloudformation: CloudFormationClient,
    s3: S3Client,
    sts: STSClient,
    *,
    stack_name: str,
    settings: StackSettings | None = None,
    on_event: EventCallback | None = None,
    sleep: Sleep = time.sleep,
    lambda_client: LambdaClient | None = None,
) -> StackOutputs:
    """Deploy the installed proxy code with these settings; return the outputs.

    With `lambda_client`, the proxy's layer is published too, for `mless attach`.
    """
    bucket = ensure_code_bucket(s3, sts, cloudformation.meta.region_name)
    plan = plan_deploy(
        cloudformation,
        s3,
        stack_name=stack_name,
        code_bucket=bucket,
        code=build_proxy_zip(),
        settings=settings,
        lambda_client=lambda_client,
    )
    return apply_deploy(
        plan,
        cloudformation,
        s3,
        on_event=on_event,
        sleep=sleep,
        lambda_client=lambda_client,
    )


def _create_stack(
    plan: DeployPlan,
    cloudformation: CloudFormationClient,
    on_event: EventCallback | None,
    sleep: Sleep,
) -> None:
    with calling_aws(f"stack {plan.stack_name}"):
        stack_id = cloudformation.create_stack(
            StackName=plan.stack_name,
            TemplateBody=plan.template_body,
            Parameters=parameter_list(plan.parameters),
            Capabilities=CAPABILITIES,
            # A stack that fails to create is removed, so the next deploy
            # creates it afresh instead of finding it stuck in ROLLBACK_COMPLETE.
            OnFailure="DELETE",
        )["StackId"]
    wait_for_stack(cloudformation, stack_id, "CreateStack", set(), on_event, sleep)


def _update_stack(
    plan: DeployPlan,
    cloudformation: CloudFormationClient,
    on_event: EventCallback | None,
    sleep: Sleep,
) -> None:
    seen = latest_event_ids(cloudformation, plan.stack_name)
    try:
        stack_id = cloudformation.update_stack(
            StackName=plan.stack_name,
            TemplateBody=plan.template_body,
            Parameters=parameter_list(plan.parameters),
            Capabilities=CAPABILITIES,
        )["StackId"]
    except ClientError as exc:
        if _NO_UPDATES in str(exc):
            logger.debug("the stack %s is already up to date", plan.stack_name)
            return
        raise AwsError.from_client_error(exc, f"stack {plan.stack_name}") from exc
    wait_for_stack(cloudformation, stack_id, "UpdateStack", seen, on_event, sleep)


def _check_updatable(stack: StackTypeDef) -> None:
    status = stack["StackStatus"]
    if status in _SETTLED:
        return
    if status.endswith("_IN_PROGRESS"):
        fix = "wait for it to settle, then deploy again."
    else:
        fix = "remove it with `mless destroy`, then deploy again."
    raise AwsError(
        "UpdateStack",
        f"stack {stack['StackName']}",
        f"the stack cannot be updated while {status}; {fix}",
    )


def _current_template(cloudformation: CloudFormationClient, stack: str) -> object:
    with calling_aws(f"stack {stack}"):
        response = cloudformation.get_template(
            StackName=stack, TemplateStage="Original"
        )
    # A YAML template comes back as its text; botocore parses a JSON one.
    return response["TemplateBody"]


def parameter_list(parameters: Mapping[str, str]) -> list[ParameterTypeDef]:
    """Return stack parameters as CloudFormation's calls take them."""
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]


def _object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey"}:
            return False
        raise AwsError.from_client_error(exc, f"s3://{bucket}/{key}") from exc
