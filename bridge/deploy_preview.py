"""What a deploy would change, in words, for `mless deploy --dry-run`.

An update's resource changes come from a change set, created, read and
deleted again; the stack itself stays as it is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.deploy import CAPABILITIES, DeployAction, DeployPlan, parameter_list
from bridge.errors import AwsError, calling_aws
from bridge.proxy_layer import proxy_layer_name
from bridge.stack_events import STACK_WAIT_SECONDS
from bridge.templates import load_template_text

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient


@dataclass(frozen=True)
class ResourceChange:
    """One change a stack update would make, as a change set describes it."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""


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
            Parameters=parameter_list(plan.parameters),
            Capabilities=CAPABILITIES,
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
