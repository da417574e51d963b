"""The errors mless raises, in one tree that branches by who must act.

    MlessError                  catch this to catch everything mless raises
    ├── ConfigurationError      the user must change a setting, a file or a command
    │   ├── StackNotFoundError  the stack is not deployed: run `mless deploy`
    │   ├── ConfigFileError     a template or mless.yaml is wrong; names file and key
    │   └── RecordNotFoundError no single recorded invocation matches an id
    ├── AwsError                an AWS call failed; names the call and the resource
    ├── AwsUnreachableError     nothing answered at AWS's or the endpoint's address
    ├── LabAlreadyServingError  another lab serves the stack: stop that one first
    ├── AttachError             a function cannot be attached or restored as asked
    ├── BadMessageError         a message is unusable; the loop drops it and moves on
    └── HandlerError            the user's handler failed; its error goes to the caller

The CLI exits with 2 for a ConfigurationError and with 1 for the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError


class MlessError(Exception):
    """Base of every error mless raises on purpose."""


class ConfigurationError(MlessError):
    """The user's configuration is wrong or incomplete; the message says the fix."""


class StackNotFoundError(ConfigurationError):
    """The mless stack does not exist in the account and region in use."""

    def __init__(self, stack_name: str, region: str) -> None:
        super().__init__(
            f"The stack {stack_name!r} does not exist in {region}; "
            "deploy it with `mless deploy` or choose another stack name."
        )
        self.stack_name = stack_name
        self.region = region


class ConfigFileError(ConfigurationError):
    """A template or mless.yaml is unreadable or wrong; names the file and the key."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        where = f"{path}: {key}" if key else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.key = key


class RecordNotFoundError(ConfigurationError):
    """No recorded invocation has the id given, or several share its prefix."""


class AwsError(MlessError):
    """An AWS call failed; the message names the call and the resource."""

    def __init__(self, operation: str, resource: str, detail: str) -> None:
        super().__init__(f"{operation} on {resource} failed: {detail}")
        self.operation = operation
        self.resource = resource

    @classmethod
    def from_client_error(cls, exc: ClientError, resource: str) -> AwsError:
        """Describe a botocore ClientError as the call and resource it concerns."""
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", "no message")
        return cls(exc.operation_name, resource, f"{code}: {message}")


class LabAlreadyServingError(MlessError):
    """Another lab serves the stack; a second would split its requests."""

    def __init__(self, lab: str, stack_name: str) -> None:
        super().__init__(
            f"Another lab ({lab}) is serving stack {stack_name}: two labs would "
            "split its requests between them. Stop that one first."
        )
        self.lab = lab


class AttachError(MlessError):
    """A function cannot be attached to the proxy, or restored, as asked."""

    def __init__(self, function_name: str, detail: str) -> None:
        super().__init__(f"Function {function_name}: {detail}")
        self.function_name = function_name


def from_botocore(exc: Exception) -> MlessError | None:
    """Describe botocore's own failures (no credentials, no network) in one line.

    Returns None for anything that is not one of them.
    """
    from botocore import exceptions as botocore_errors

    if isinstance(exc, botocore_errors.NoCredentialsError):
        return ConfigurationError(
            "No AWS credentials were found: run `aws configure`, set AWS_PROFILE "
            "or pass --profile."
        )
    if isinstance(exc, botocore_errors.ProfileNotFound):
        return ConfigurationError(f"{exc}: check ~/.aws/config or --profile.")
    if isinstance(exc, botocore_errors.NoRegionError):
        return ConfigurationError(
            "No AWS region is set: pass --region or set AWS_REGION."
        )
    if isinstance(exc, botocore_errors.PartialCredentialsError):
        return ConfigurationError(f"{exc}; check the profile or the AWS_* variables.")
    if isinstance(exc, botocore_errors.ClientError):
        return AwsError.from_client_error(exc, "AWS")
    if isinstance(exc, botocore_errors.BotoCoreError) and "endpoint_url" in exc.kwargs:
        # Connection refused, read timeout: nothing answered at that address.
        return AwsUnreachableError(str(exc))
    if isinstance(exc, botocore_errors.BotoCoreError):
        return MlessError(" ".join(str(exc).split()))
    return None


class AwsUnreachableError(MlessError):
    """Nothing answered at AWS's address, or at the --endpoint-url given."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"{detail}. Check the network and the region, or that --endpoint-url "
            "names a running endpoint (`mless local` for the local cloud)."
        )


class BadMessageError(MlessError):
    """A message cannot be used (not an envelope, too late, or a duplicate)."""


class HandlerError(MlessError):
    """The user's handler could not be run or raised an error."""


@contextmanager
def calling_aws(resource: str) -> Iterator[None]:
    """Turn a failed AWS call on `resource` into an AwsError naming both."""
    try:
        yield
    except ClientError as exc:
        raise AwsError.from_client_error(exc, resource) from exc


def error_code(exc: ClientError) -> str:
    """The error code AWS answered with, e.g. "ResourceNotFoundException"."""
    return str(exc.response.get("Error", {}).get("Code", ""))
