"""A function's configuration in Lambda, read and changed for attach and detach.

`FunctionConfigurations` reads a function's configuration, changes it and
waits until Lambda has applied the change, puts a snapshot's configuration
back, tells whether the function runs the proxy, and grants or revokes the
stack's policy on the function's role.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from bridge.errors import AttachError, AwsError, calling_aws, error_code
from bridge.proxy_layer import unversioned
from bridge.snapshots import FunctionState, Snapshot

PROXY_HANDLER = "lambda_proxy.handler.handler"
PROXY_RUNTIME = "python3.12"
# Lambda applies a configuration change in a few seconds; these bound a stuck one.
UPDATE_POLL_SECONDS = 1
UPDATE_POLL_ATTEMPTS = 300


class AttachmentState(Enum):
    """Whether an attached function still runs the proxy."""

    ATTACHED = "attached"
    REDEPLOYED = "redeployed by another tool: no longer runs the proxy"
    MISSING = "no longer exists"


class FunctionConfigurations:
    """Reads and changes functions' configurations, and the policies on their roles."""

    def __init__(
        self, lambda_client: Any, iam: Any, *, poll_seconds: float = UPDATE_POLL_SECONDS
    ) -> None:
        self._lambda = lambda_client
        self._iam = iam
        self._poll_seconds = poll_seconds

    def get(self, function: str) -> dict[str, Any] | None:
        """Return a function's configuration (by name or ARN); None if it is absent."""
        try:
            configuration: dict[str, Any] = self._lambda.get_function_configuration(
                FunctionName=function
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise AwsError.from_client_error(exc, f"function {function}") from exc
        return configuration

    def state_of(
        self, snapshot: Snapshot, configuration: Mapping[str, Any] | None = None
    ) -> AttachmentState:
        """Whether the function of a snapshot still runs the proxy."""
        if configuration is None:
            configuration = self.get(snapshot.function_name)
        if configuration is None:
            return AttachmentState.MISSING
        state = FunctionState.of(configuration)
        proxy_layer = unversioned(snapshot.proxy_layer_arn)
        runs_proxy = state.handler == PROXY_HANDLER and any(
            unversioned(arn) == proxy_layer for arn in state.layers
        )
        return AttachmentState.ATTACHED if runs_proxy else AttachmentState.REDEPLOYED

    def update(self, function_name: str, arguments: Mapping[str, Any]) -> None:
        """Change a function's configuration and wait until Lambda has applied it."""
        with calling_aws(f"function {function_name}"):
            self._lambda.update_function_configuration(
                FunctionName=function_name, **arguments
            )
        try:
            self._lambda.get_waiter("function_updated").wait(
                FunctionName=function_name,
                WaiterConfig={
                    "Delay": self._poll_seconds,
                    "MaxAttempts": UPDATE_POLL_ATTEMPTS,
                },
            )
        except WaiterError as exc:
            raise AttachError(
                function_name, f"Lambda did not apply the change: {exc}"
            ) from exc

    def restore(self, snapshot: Snapshot, current: FunctionState | None) -> list[str]:
        """Put a snapshot's configuration back; return what could not be.

        Given the `current` state, only the fields that differ are set.
        """
        arguments = snapshot.state.update_arguments(current)
        if not arguments:
            return []
        try:
            self.update(snapshot.function_name, arguments)
            return []
        except AwsError:
            gone = [arn for arn in snapshot.state.layers if not self._layer_exists(arn)]
            if not gone:
                raise
        # Lambda lets a function keep a layer version deleted while it used
        # it, but refuses one named anew in its configuration.
        arguments["Layers"] = [a for a in snapshot.state.layers if a not in gone]
        self.update(snapshot.function_name, arguments)
        return [
            f"layer {arn} was deleted while the function was attached; Lambda "
            "cannot add it back"
            for arn in gone
        ]

    def _layer_exists(self, layer_version_arn: str) -> bool:
        layer, _, version = layer_version_arn.rpartition(":")
        try:
            self._lambda.get_layer_version(LayerName=layer, VersionNumber=int(version))
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise AwsError.from_client_error(exc, f"layer {layer_version_arn}") from exc
        return True

    def grant(self, snapshot: Snapshot) -> None:
        """Attach the snapshot's policy to the function's role."""
        with calling_aws(f"role {snapshot.role_name}"):
            self._iam.attach_role_policy(
                RoleName=snapshot.role_name, PolicyArn=snapshot.policy_arn
            )

    def revoke(self, snapshot: Snapshot) -> None:
        """Detach the snapshot's policy from the function's role, if still there."""
        try:
            self._iam.detach_role_policy(
                RoleName=snapshot.role_name, PolicyArn=snapshot.policy_arn
            )
        except ClientError as exc:
            # Already gone (taken by hand, or the role was deleted): nothing to undo.
            if error_code(exc) != "NoSuchEntity":
                raise AwsError.from_client_error(
                    exc, f"role {snapshot.role_name}"
                ) from exc

    def role_has_policy(self, role_name: str, policy_arn: str) -> bool:
        """Whether a managed policy is attached to a role."""
        pages = self._iam.get_paginator("list_attached_role_policies").paginate(
            RoleName=role_name
        )
        with calling_aws(f"role {role_name}"):
            return any(
                policy["PolicyArn"] == policy_arn
                for page in pages
                for policy in page["AttachedPolicies"]
            )

    def reserved_concurrency(self, function: str) -> int | None:
        """The function's reserved concurrency; None when it has none (or 0)."""
        with calling_aws(f"function {function}"):
            answer = self._lambda.get_function_concurrency(FunctionName=function)
        return answer.get("ReservedConcurrentExecutions") or None
