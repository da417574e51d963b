"""The mless stack: deploy it (plan, then apply), read its outputs, destroy it.

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
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from itertools import takewhile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from bridge.errors import (
    AwsError,
    ConfigurationError,
    StackNotFoundError,
    calling_aws,
    error_code,
)
from bridge.packaging import (
    build_proxy_layer_zip,
    build_proxy_zip,
    code_key,
    layer_key,
)
from bridge.proxy_layer import (
    delete_proxy_layer,
    find_proxy_layer,
    proxy_layer_name,
    publish_proxy_layer,
)
from bridge.templates import load_template_text
from lambda_proxy.presence import LabPresence, Mode, Sighting

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_cloudformation.type_defs import (
        ParameterTypeDef,
        StackEventTypeDef,
        StackTypeDef,
    )
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "cloudformation" / "mless.yaml"

STACK_POLL_SECONDS = 5.0
# Creating the stack takes a minute or two; this bounds a stuck operation.
STACK_WAIT_SECONDS = 1800.0

EventCallback = Callable[[str], None]
Sleep = Callable[[float], None]

# The template's role and policy take generated names, which needs only this.
_CAPABILITIES: list[CapabilityType] = ["CAPABILITY_IAM"]
_SETTLED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_NO_UPDATES = "No updates are to be performed"
# How SQS says a queue is gone, in its JSON and its older query protocol.
_QUEUE_GONE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


class DeployAction(Enum):
    """What a deploy does to the stack."""

    CREATE = "create"
    UPDATE = "update"
    NONE = "nothing to do"


@dataclass(frozen=True)
class StackSettings:
    """The stack parameters a user chooses; the defaults are the template's."""

    name_prefix: str = "mless"
    proxy_timeout_seconds: int = 30
    proxy_memory_mb: int = 256
    message_retention_seconds: int = 345600
    max_receive_count: int = 5
    mode: str = "auto"
    attachable_functions: str = "*"

    def parameters(self, code_bucket: str, key: str) -> dict[str, str]:
        """Return the template's parameters for these settings and this package."""
        return {
            "NamePrefix": self.name_prefix,
            "ProxyCodeBucket": code_bucket,
            "ProxyCodeKey": key,
            "ProxyTimeoutSeconds": str(self.proxy_timeout_seconds),
            "ProxyMemoryMB": str(self.proxy_memory_mb),
            "MessageRetentionSeconds": str(self.message_retention_seconds),
            "MaxReceiveCount": str(self.max_receive_count),
            "Mode": self.mode,
            "AttachableFunctions": self.attachable_functions,
        }

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, str]) -> StackSettings:
        """Return the settings a stack was deployed with, defaults for any missing."""
        defaults = cls()
        return cls(
            name_prefix=parameters.get("NamePrefix", defaults.name_prefix),
            proxy_timeout_seconds=int(
                parameters.get("ProxyTimeoutSeconds", defaults.proxy_timeout_seconds)
            ),
            proxy_memory_mb=int(
                parameters.get("ProxyMemoryMB", defaults.proxy_memory_mb)
            ),
            message_retention_seconds=int(
                parameters.get(
                    "MessageRetentionSeconds", defaults.message_retention_seconds
                )
            ),
            max_receive_count=int(
                parameters.get("MaxReceiveCount", defaults.max_receive_count)
            ),
            mode=parameters.get("Mode", defaults.mode),
            attachable_functions=parameters.get(
                "AttachableFunctions", defaults.attachable_functions
            ),
        )


@dataclass(frozen=True)
class StackOutputs:
    """What the CLI reads from a deployed stack.

    Each field is the output of the same name in PascalCase (`request_queue_url`
    is `RequestQueueUrl`), except three: `stack_name`, and `code_bucket` and
    `code_key`, where the deployed proxy package lies (the stack's
    ProxyCodeBucket and ProxyCodeKey parameters).
    """

    request_queue_url: str
    request_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    reply_queue_prefix: str
    payload_bucket_name: str
    proxy_function_name: str
    proxy_function_arn: str
    proxy_role_arn: str
    lab_policy_arn: str
    name_prefix: str
    proxy_access_policy_arn: str
    stack_name: str
    code_bucket: str
    code_key: str


_NOT_OUTPUTS = {"stack_name", "code_bucket", "code_key"}
_OUTPUT_FIELDS = [f.name for f in fields(StackOutputs) if f.name not in _NOT_OUTPUTS]


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


def read_template() -> str:
    """Return the text of the stack's template."""
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def read_stack_outputs(
    cloudformation: CloudFormationClient, stack_name: str
) -> StackOutputs:
    """Return a deployed stack's outputs; StackNotFoundError if it is absent."""
    stack = _describe_stack(cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name, cloudformation.meta.region_name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [_pascal(n) for n in _OUTPUT_FIELDS if _pascal(n) not in outputs]
    if missing:
        raise ConfigurationError(
            f"The stack {stack_name!r} ({stack['StackStatus']}) lacks the outputs "
            f"{', '.join(missing)}; deploy it again with `mless deploy`."
        )
    parameters = _current_parameters(stack)
    return StackOutputs(
        **{name: outputs[_pascal(name)] for name in _OUTPUT_FIELDS},
        stack_name=stack_name,
        code_bucket=parameters["ProxyCodeBucket"],
        code_key=parameters["ProxyCodeKey"],
    )


def read_stack_settings(
    cloudformation: CloudFormationClient, stack_name: str
) -> StackSettings | None:
    """Return the settings a stack was deployed with, or None if it is absent."""
    stack = _describe_stack(cloudformation, stack_name)
    if stack is None:
        return None
    return StackSettings.from_parameters(_current_parameters(stack))


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

    `layer` is the proxy's layer package; by default it is built from the
    installed proxy, as `code` usually is. Without `lambda_client` the plan
    leaves the proxy's layer as it is.
    """
    template_body = read_template() if template_body is None else template_body
    layer = build_proxy_layer_zip() if layer is None else layer
    key = code_key(code)
    parameters = (settings or StackSettings()).parameters(code_bucket, key)
    stack = _describe_stack(cloudformation, stack_name)
    current: dict[str, str] = {}
    template_changed = True
    if stack is None:
        action = DeployAction.CREATE
    else:
        _check_updatable(stack)
        current = _current_parameters(stack)
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


def destroy_stack(
    cloudformation: CloudFormationClient,
    sqs: SQSClient,
    s3: S3Client,
    *,
    stack_name: str,
    on_event: EventCallback | None = None,
    sleep: Sleep = time.sleep,
    lambda_client: LambdaClient | None = None,
) -> list[str]:
    """Delete the stack and its proxies' reply queues; return the queues' URLs.

    The payload bucket is emptied first, since CloudFormation cannot delete a
    bucket that holds objects. Only the stack's parameters are needed, so a
    stack left without outputs by a failed update is destroyed the same way.
    With `lambda_client`, the versions of the proxy's layer go too.
    """
    stack = _describe_stack(cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name, cloudformation.meta.region_name)
    stack_id = stack["StackId"]
    bucket = _physical_id(cloudformation, stack_id, "PayloadBucket")
    if bucket is not None:
        _empty_bucket(s3, bucket)

    seen = _latest_event_ids(cloudformation, stack_id)
    with calling_aws(f"stack {stack_name}"):
        cloudformation.delete_stack(StackName=stack_id)
    _wait_for(cloudformation, stack_id, "DeleteStack", seen, on_event, sleep)

    # Derived as the template's ReplyQueuePrefix output is, from the parameter
    # that every stack has, even one without outputs.
    name_prefix = _current_parameters(stack)["NamePrefix"]
    if lambda_client is not None:
        delete_proxy_layer(lambda_client, proxy_layer_name(name_prefix))
    return _delete_reply_queues(sqs, f"{name_prefix}-reply-")


def describe_plan(plan: DeployPlan, changes: Sequence[ResourceChange]) -> list[str]:
    """Return a deploy plan in words, one line per thing it would do."""
    lines = [f"stack {plan.stack_name}: {plan.action.value}"]
    if plan.upload_code:
        lines.append(f"upload the proxy's packages to s3://{plan.code_bucket}")
    if plan.publish_layer:
        name = proxy_layer_name(plan.parameters["NamePrefix"])
        lines.append(f"publish a version of layer {name}")
    for name, value in plan.parameters.items():
        before = plan.current_parameters.get(name)
        if plan.action is DeployAction.UPDATE and before != value:
            lines.append(f"parameter {name}: {before} -> {value}")
    if plan.action is DeployAction.UPDATE and plan.template_changed:
        lines.append("template: changed")
    if plan.action is DeployAction.CREATE:
        resources = load_template_text(plan.template_body)["Resources"]
        changes = [
            ResourceChange("Add", logical_id, resource["Type"])
            for logical_id, resource in resources.items()
        ]
    for change in changes:
        replacing = (
            f" (replacement: {change.replacement})" if change.replacement else ""
        )
        lines.append(
            f"{change.action} {change.logical_id} ({change.resource_type}){replacing}"
        )
    return lines


@dataclass(frozen=True)
class ResourceChange:
    """One change a stack update would make, as a change set describes it."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""


def preview_changes(
    cloudformation: CloudFormationClient, plan: DeployPlan
) -> list[ResourceChange]:
    """Return the resource changes an update plan would make, changing nothing.

    A change set is created, read and deleted. A plan that creates the stack
    adds every resource of the template, and one that updates nothing has no
    changes; neither needs a change set.
    """
    if plan.action is not DeployAction.UPDATE:
        return []
    name = f"mless-preview-{uuid.uuid4().hex[:12]}"
    with calling_aws(f"stack {plan.stack_name}"):
        cloudformation.create_change_set(
            StackName=plan.stack_name,
            ChangeSetName=name,
            ChangeSetType="UPDATE",
            TemplateBody=plan.template_body,
            Parameters=_parameter_list(plan.parameters),
            Capabilities=_CAPABILITIES,
        )
    try:
        return _read_change_set(cloudformation, plan.stack_name, name)
    finally:
        with calling_aws(f"change set {name}"):
            cloudformation.delete_change_set(
                StackName=plan.stack_name, ChangeSetName=name
            )


def _read_change_set(
    cloudformation: CloudFormationClient, stack_name: str, name: str
) -> list[ResourceChange]:
    deadline = time.monotonic() + STACK_WAIT_SECONDS
    while True:
        with calling_aws(f"change set {name}"):
            described = cloudformation.describe_change_set(
                StackName=stack_name, ChangeSetName=name
            )
        status = described["Status"]
        if status not in {"CREATE_PENDING", "CREATE_IN_PROGRESS"}:
            break
        if time.monotonic() > deadline:
            raise AwsError("CreateChangeSet", f"change set {name}", "still pending.")
        time.sleep(1)
    if status == "FAILED":
        reason = described.get("StatusReason", "")
        # CloudFormation fails a change set that would change nothing.
        if "didn't contain changes" in reason or "No updates" in reason:
            return []
        raise AwsError("CreateChangeSet", f"change set {name}", reason)
    changes = []
    for change in described.get("Changes", []):
        resource = change.get("ResourceChange", {})
        changes.append(
            ResourceChange(
                action=resource.get("Action", "?"),
                logical_id=resource.get("LogicalResourceId", "?"),
                resource_type=resource.get("ResourceType", "?"),
                replacement=resource.get("Replacement", ""),
            )
        )
    return changes


@dataclass(frozen=True)
class QueueDepths:
    """How many messages wait in the stack's queues (SQS's approximate counts)."""

    requests_waiting: int
    requests_in_flight: int
    dead_letters: int


def read_queue_depths(sqs: SQSClient, outputs: StackOutputs) -> QueueDepths:
    """Return the approximate message counts of the request and dead-letter queues."""
    requests = _queue_counts(sqs, outputs.request_queue_url)
    dead = _queue_counts(sqs, outputs.dead_letter_queue_url)
    return QueueDepths(
        requests_waiting=requests.get("ApproximateNumberOfMessages", 0),
        requests_in_flight=requests.get("ApproximateNumberOfMessagesNotVisible", 0),
        dead_letters=dead.get("ApproximateNumberOfMessages", 0),
    )


def read_lab_presence(s3: S3Client, outputs: StackOutputs) -> Sighting:
    """Whether a lab serves the stack, as its proxies read the lab's heartbeat."""
    return LabPresence(outputs.payload_bucket_name, s3).read()


def read_function_mode(lambda_client: LambdaClient, function_name: str) -> str | None:
    """The mode a function's proxy runs in (MLESS_MODE); None if it cannot be read."""
    try:
        configuration = lambda_client.get_function_configuration(
            FunctionName=function_name
        )
    except ClientError:
        return None
    variables = configuration.get("Environment", {}).get("Variables", {})
    return variables.get("MLESS_MODE") or Mode.AUTO.value


def _queue_counts(sqs: SQSClient, queue_url: str) -> dict[str, int]:
    with calling_aws(f"queue {queue_url}"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
    return {name: int(value) for name, value in attributes.items()}


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
            Parameters=_parameter_list(plan.parameters),
            Capabilities=_CAPABILITIES,
            # A stack that fails to create is removed, so the next deploy
            # creates it afresh instead of finding it stuck in ROLLBACK_COMPLETE.
            OnFailure="DELETE",
        )["StackId"]
    _wait_for(cloudformation, stack_id, "CreateStack", set(), on_event, sleep)


def _update_stack(
    plan: DeployPlan,
    cloudformation: CloudFormationClient,
    on_event: EventCallback | None,
    sleep: Sleep,
) -> None:
    seen = _latest_event_ids(cloudformation, plan.stack_name)
    try:
        stack_id = cloudformation.update_stack(
            StackName=plan.stack_name,
            TemplateBody=plan.template_body,
            Parameters=_parameter_list(plan.parameters),
            Capabilities=_CAPABILITIES,
        )["StackId"]
    except ClientError as exc:
        if _NO_UPDATES in str(exc):
            logger.debug("the stack %s is already up to date", plan.stack_name)
            return
        raise AwsError.from_client_error(exc, f"stack {plan.stack_name}") from exc
    _wait_for(cloudformation, stack_id, "UpdateStack", seen, on_event, sleep)


_SUCCESS = {
    "CreateStack": "CREATE_COMPLETE",
    "UpdateStack": "UPDATE_COMPLETE",
    "DeleteStack": "DELETE_COMPLETE",
}


def _wait_for(
    cloudformation: CloudFormationClient,
    stack_id: str,
    operation: str,
    seen: set[str],
    on_event: EventCallback | None,
    sleep: Sleep,
) -> None:
    """Poll the stack until it settles, reporting each new event once."""
    failures: list[str] = []
    deadline = time.monotonic() + STACK_WAIT_SECONDS
    while True:
        status = _stack_status(cloudformation, stack_id)
        for event in _new_events(cloudformation, stack_id, seen):
            text = _describe_event(event)
            if on_event is not None:
                on_event(text)
            if event["ResourceStatus"].endswith("_FAILED"):
                failures.append(text)
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise AwsError(operation, f"stack {stack_id}", f"it is still {status}.")
        sleep(STACK_POLL_SECONDS)
    if status != _SUCCESS[operation]:
        cause = f"; the first failure: {failures[0]}" if failures else ""
        raise AwsError(operation, f"stack {stack_id}", f"it ended {status}{cause}")


def _new_events(
    cloudformation: CloudFormationClient, stack_id: str, seen: set[str]
) -> list[StackEventTypeDef]:
    """Return the stack's events not seen yet, oldest first, and mark them seen."""
    pages = cloudformation.get_paginator("describe_stack_events").paginate(
        StackName=stack_id
    )
    newest_first = (event for page in pages for event in page["StackEvents"])
    with calling_aws(f"stack {stack_id}"):
        # The first event already seen ends the new ones; older pages stay unread.
        fresh = list(takewhile(lambda e: e["EventId"] not in seen, newest_first))
    seen.update(event["EventId"] for event in fresh)
    return fresh[::-1]


def _latest_event_ids(cloudformation: CloudFormationClient, stack: str) -> set[str]:
    """Return the id of the stack's newest event: what to report comes after it."""
    with calling_aws(f"stack {stack}"):
        events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
    return {events[0]["EventId"]} if events else set()


def _describe_event(event: StackEventTypeDef) -> str:
    text = (
        f"{event.get('LogicalResourceId', '?')} ({event.get('ResourceType', '?')}) "
        f"{event['ResourceStatus']}"
    )
    reason = event.get("ResourceStatusReason")
    return f"{text}: {reason}" if reason else text


def _describe_stack(
    cloudformation: CloudFormationClient, stack: str
) -> StackTypeDef | None:
    try:
        return cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise AwsError.from_client_error(exc, f"stack {stack}") from exc


def _stack_status(cloudformation: CloudFormationClient, stack_id: str) -> str:
    stack = _describe_stack(cloudformation, stack_id)
    # AWS still describes a deleted stack when asked by id; some stand-ins
    # forget it at once.
    return "DELETE_COMPLETE" if stack is None else stack["StackStatus"]


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


def _current_parameters(stack: StackTypeDef) -> dict[str, str]:
    return {
        p["ParameterKey"]: p.get("ParameterValue", "")
        for p in stack.get("Parameters", [])
    }


def _current_template(cloudformation: CloudFormationClient, stack: str) -> object:
    with calling_aws(f"stack {stack}"):
        response = cloudformation.get_template(
            StackName=stack, TemplateStage="Original"
        )
    # A YAML template comes back as its text; botocore parses a JSON one.
    return response["TemplateBody"]


def _parameter_list(parameters: Mapping[str, str]) -> list[ParameterTypeDef]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]


def _physical_id(
    cloudformation: CloudFormationClient, stack_id: str, logical_id: str
) -> str | None:
    with calling_aws(f"stack {stack_id}"):
        resources = cloudformation.describe_stack_resources(StackName=stack_id)
    for resource in resources["StackResources"]:
        # moto lists the resources it cannot create without their ids.
        if resource.get("LogicalResourceId") == logical_id:
            return resource.get("PhysicalResourceId")
    return None


def _object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey"}:
            return False
        raise AwsError.from_client_error(exc, f"s3://{bucket}/{key}") from exc


def _empty_bucket(s3: S3Client, bucket: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    try:
        # A page holds at most 1,000 keys, as many as one DeleteObjects takes.
        for page in paginator.paginate(Bucket=bucket):
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", [])
            ]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise AwsError.from_client_error(exc, f"bucket {bucket}") from exc


def _delete_reply_queues(sqs: SQSClient, prefix: str) -> list[str]:
    # Only <prefix><hex> is a reply queue: with a NamePrefix that itself ends
    # in "-reply", another stack's queues would share the text prefix.
    pattern = re.compile(re.escape(prefix) + "[0-9A-Fa-f]+")
    paginator = sqs.get_paginator("list_queues")
    with calling_aws(f"queues {prefix}*"):
        urls = [
            url
            for page in paginator.paginate(QueueNamePrefix=prefix)
            for url in page.get("QueueUrls", [])
        ]
    deleted = []
    for url in urls:
        if not pattern.fullmatch(url.rsplit("/", 1)[-1]):
            continue
        try:
            sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if error_code(exc) not in _QUEUE_GONE:
                raise AwsError.from_client_error(exc, f"queue {url}") from exc
        deleted.append(url)
    return deleted


def _pascal(snake: str) -> str:
    return "".join(word.capitalize() for word in snake.split("_"))
