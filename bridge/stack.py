"""The mless stack as deployed: its settings and outputs, and reading them.

The stack's life is in the modules beside this one: `deploy` creates or
updates it (plan, then apply), `deploy_preview` says what a deploy would
change, `stack_events` waits on an operation while reporting its events,
`stack_status` reads what `mless status` shows, and `teardown` deletes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bridge.errors import AwsError, ConfigurationError, StackNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackTypeDef

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "cloudformation" / "mless.yaml"


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


def read_template() -> str:
    """Return the text of the stack's template."""
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def read_stack_outputs(
    cloudformation: CloudFormationClient, stack_name: str
) -> StackOutputs:
    """Return a deployed stack's outputs; StackNotFoundError if it is absent."""
    stack = describe_stack(cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name, cloudformation.meta.region_name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [_pascal(n) for n in _OUTPUT_FIELDS if _pascal(n) not in outputs]
    if missing:
        raise ConfigurationError(
            f"The stack {stack_name!r} ({stack['StackStatus']}) lacks the outputs "
            f"{', '.join(missing)}; deploy it again with `mless deploy`."
        )
    parameters = current_parameters(stack)
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
    stack = describe_stack(cloudformation, stack_name)
    if stack is None:
        return None
    return StackSettings.from_parameters(current_parameters(stack))


def describe_stack(
    cloudformation: CloudFormationClient, stack: str
) -> StackTypeDef | None:
    """Return a stack as CloudFormation describes it, or None if it is absent."""
    try:
        return cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise AwsError.from_client_error(exc, f"stack {stack}") from exc


def current_parameters(stack: StackTypeDef) -> dict[str, str]:
    """Return the parameters a described stack was deployed with, by name."""
    return {
        p["ParameterKey"]: p.get("ParameterValue", "")
        for p in stack.get("Parameters", [])
    }


def _pascal(snake: str) -> str:
    return "".join(word.capitalize() for word in snake.split("_"))
