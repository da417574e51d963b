"""The errors mless raises, in one tree that branches by who must act.

    MlessError                  catch this to catch everything mless raises
    ├── ConfigurationError      the user must change a setting, a file or a command
    │   └── StackNotFoundError  the stack is not deployed: run `mless deploy`
    ├── AwsError                an AWS call failed; names the call and the resource
    ├── BadMessageError         a message is unusable; the loop drops it and moves on
    └── HandlerError            the user's handler failed; its error goes to the caller

The CLI exits with 2 for a ConfigurationError and with 1 for the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


class BadMessageError(MlessError):
    """A message cannot be used (not an envelope, too late, or a duplicate)."""


class HandlerError(MlessError):
    """The user's handler could not be run or raised an error."""
