"""Attach deployed functions to the proxy, and detach them exactly as they were.

Attaching a function, in this order, so that a crash at any point leaves
either the function untouched or a snapshot that restores it:

1. snapshot: record the configuration (see `snapshots`), on this machine
   first, then in AWS, and tag the function with the AWS copy's location;
2. grant: attach the stack's ProxyAccessPolicy to the function's role, so the
   proxy may use the queues with the function's own credentials;
3. switch: in one UpdateFunctionConfiguration, run the proxy (the handler
   `lambda_proxy.handler.handler` on python3.12, from the proxy's layer added
   to the function's own layers) with the stack's MLESS_* variables added to
   the function's own, and a longer timeout when debugging. The function's
   code stays as deployed, so any runtime can be attached and detaching is
   a change of configuration only.

If the switch fails, the grant and the snapshot are undone. An `Attacher`
detaches too, as `detach` describes; `run_attachments` attaches functions
for the length of one `mless run`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bridge.detach import Detacher, DetachPlan, DetachReport
from bridge.errors import AttachError, ConfigurationError
from bridge.function_catalog import DeployedFunction
from bridge.function_configuration import (
    PROXY_HANDLER,
    PROXY_RUNTIME,
    UPDATE_POLL_SECONDS,
    AttachmentState,
    FunctionConfigurations,
)
from bridge.proxy_layer import find_proxy_layer, proxy_layer_name
from bridge.snapshots import (
    FunctionState,
    LocalSnapshots,
    Session,
    Snapshot,
    SnapshotStore,
    arn_account_region,
)
from bridge.stack import StackOutputs

logger = logging.getLogger(__name__)

PROXY_VARIABLE_PREFIX = "MLESS_"
DEBUG_TIMEOUT_SECONDS = 900
# Lambda allows five layers; the proxy's takes one of them.
MAX_LAYERS = 5


class ClientFactory(Protocol):
    """Makes boto3 clients (bridge.aws.Clients is one)."""

    def client(self, service: str) -> Any: ...


@dataclass(frozen=True)
class AttachPlan:
    """What attaching one function will do, decided before anything changes.

    `snapshot` is what will be recorded; `previous` is the snapshot found when
    the function is attached already, in which case only the record (its
    session) and the timeout may change.
    """

    function_name: str
    snapshot: Snapshot
    target: FunctionState
    grant_policy: bool
    previous: Snapshot | None = None
    change_timeout: bool = False
    notes: tuple[str, ...] = ()

    @property
    def already_attached(self) -> bool:
        return self.previous is not None

    def steps(self) -> list[str]:
        """The plan in words, one line per step."""
        name = self.function_name
        if self.already_attached:
            lines = [f"{name}: already attached to stack {self.snapshot.stack_name}"]
            if self.change_timeout:
                lines.append(f"{name}: set timeout {self.target.timeout_seconds} s")
            return lines
        lines = [f"{name}: record its configuration in {self.snapshot.location}"]
        if self.grant_policy:
            lines.append(
                f"{name}: attach {self.snapshot.policy_arn} to role "
                f"{self.snapshot.role_name}"
            )
        lines.append(
            f"{name}: run {PROXY_HANDLER} ({PROXY_RUNTIME}) from layer "
            f"{self.snapshot.proxy_layer_arn}, timeout {self.target.timeout_seconds} s"
        )
        return lines


class Attacher:
    """Attaches functions to one account and region's proxy, and detaches them."""

    def __init__(
        self,
        clients: ClientFactory,
        local: LocalSnapshots | None = None,
        *,
        poll_seconds: float = UPDATE_POLL_SECONDS,
    ) -> None:
        self._lambda = clients.client("lambda")
        self._configurations = FunctionConfigurations(
            self._lambda, clients.client("iam"), poll_seconds=poll_seconds
        )
        self.snapshots = SnapshotStore(self._lambda, clients.client("s3"), local)
        self._detacher = Detacher(self._configurations, self.snapshots)

    # -- attach -----------------------------------------------------------------

    def plan_attach(
        self,
        function: str,
        outputs: StackOutputs,
        *,
        timeout_seconds: int | None = None,
        session: Session | None = None,
    ) -> AttachPlan:
        """Decide how to attach a function (a name or an unqualified ARN)."""
        configuration = self._configurations.get(function)
        if configuration is None:
            raise AttachError(function, "no such function in this account and region.")
        name = configuration["FunctionName"]
        existing = self.snapshots.find(name, configuration["FunctionArn"])
        current = FunctionState.of(configuration)
        if existing is not None and self.state_of(existing, configuration) is (
            AttachmentState.ATTACHED
        ):
            return self._plan_reattach(
                existing, current, outputs, timeout_seconds, session
            )
        _check_attachable(name, configuration)
        layer_arn = find_proxy_layer(
            self._lambda, proxy_layer_name(outputs.name_prefix), outputs.code_key
        )
        if layer_arn is None:
            raise ConfigurationError(
                f"The proxy's layer for stack {outputs.stack_name} is not published; "
                "run `mless deploy` again."
            )
        role_name = configuration["Role"].rsplit("/", 1)[-1]
        snapshot = Snapshot(
            function_name=name,
            function_arn=configuration["FunctionArn"],
            stack_name=outputs.stack_name,
            state=current,
            role_name=role_name,
            policy_arn=outputs.proxy_access_policy_arn,
            policy_was_attached=self._policy_was_attached(
                role_name, outputs.proxy_access_policy_arn, outputs, name
            ),
            proxy_layer_arn=layer_arn,
            bucket=outputs.code_bucket,
            session=session,
        )
        target = replace(
            current,
            handler=PROXY_HANDLER,
            runtime=PROXY_RUNTIME,
            layers=(*current.layers, layer_arn),
            environment={
                **current.environment,
                **self._proxy_variables(outputs),
                **_original_handler_variable(current),
            },
            timeout_seconds=timeout_seconds or current.timeout_seconds,
        )
        return AttachPlan(
            function_name=name,
            snapshot=snapshot,
            target=target,
            grant_policy=not snapshot.policy_was_attached
            and not self._configurations.role_has_policy(
                role_name, snapshot.policy_arn
            ),
            notes=tuple(self._notes(configuration)),
        )

    def attach(self, plan: AttachPlan) -> Snapshot:
        """Carry out an attach plan; on failure, undo what was done and raise."""
        if plan.previous is not None:
            self.snapshots.record(plan.snapshot)
            if plan.change_timeout:
                self._configurations.update(
                    plan.function_name, {"Timeout": plan.target.timeout_seconds}
                )
            return plan.snapshot
        granted = False
        try:
            self.snapshots.record(plan.snapshot)
            if plan.grant_policy:
                self._configurations.grant(plan.snapshot)
                granted = True
            self._check_unchanged(plan)
            self._configurations.update(
                plan.function_name, plan.target.update_arguments()
            )
        except BaseException:
            self._undo(plan, granted)
            raise
        return plan.snapshot

    def _undo(self, plan: AttachPlan, granted: bool) -> None:
        """Take back what a failed attach changed, as far as possible."""
        logger.warning("Attaching %s failed; undoing it", plan.function_name)
        try:
            # A refused update should change nothing, but a stand-in may have
            # applied part of it; the snapshot puts back whatever it did.
            configuration = self._configurations.get(plan.function_name) or {}
            current = FunctionState.of(configuration)
            if current != plan.snapshot.state:
                self._configurations.restore(plan.snapshot, current)
            if granted:
                self._configurations.revoke(plan.snapshot)
            self.snapshots.forget(plan.snapshot)
        except Exception:
            # The failure that started this is the one to report; a snapshot
            # left behind is found by `mless detach` and `mless status`.
            logger.exception("Undoing the attach of %s failed", plan.function_name)

    # -- detach -----------------------------------------------------------------

    def plan_detach(self, function: str | Snapshot) -> DetachPlan:
        """Decide how to detach a function, from its snapshot here or in AWS."""
        return self._detacher.plan_detach(function)

    def detach(self, plan: DetachPlan) -> DetachReport:
        """Carry out a detach plan and report how exact the restore was."""
        return self._detacher.detach(plan)

    # -- what is attached ---------------------------------------------------------

    def attached(self, outputs: StackOutputs) -> list[Snapshot]:
        """Return the snapshots of every function attached to this stack."""
        return self.snapshots.of_stack(
            outputs.stack_name, _account_region(outputs), outputs.code_bucket
        )

    def stale(self, outputs: StackOutputs) -> list[Snapshot]:
        """Return the functions left attached by `mless run`s that have ended."""
        return self.snapshots.left_behind(outputs.stack_name, _account_region(outputs))

    def deployed(self, function: str) -> DeployedFunction | None:
        """Return a function's own handler and runtime, as it runs without mless."""
        configuration = self._configurations.get(function)
        if configuration is None:
            return None
        name = configuration["FunctionName"]
        state = FunctionState.of(configuration)
        snapshot = self.snapshots.find(name, configuration["FunctionArn"])
        if snapshot is not None and self.state_of(snapshot, configuration) is (
            AttachmentState.ATTACHED
        ):
            state = snapshot.state
        return DeployedFunction(
            name,
            state.handler,
            state.runtime,
            self._configurations.reserved_concurrency(name),
        )

    def state_of(
        self, snapshot: Snapshot, configuration: Mapping[str, Any] | None = None
    ) -> AttachmentState:
        """Whether the function of a snapshot still runs the proxy."""
        return self._configurations.state_of(snapshot, configuration)

    # -- steps --------------------------------------------------------------------

    def _plan_reattach(
        self,
        existing: Snapshot,
        current: FunctionState,
        outputs: StackOutputs,
        timeout_seconds: int | None,
        session: Session | None,
    ) -> AttachPlan:
        if existing.stack_name != outputs.stack_name:
            raise AttachError(
                existing.function_name,
                f"it is attached to stack {existing.stack_name}; detach it first.",
            )
        return AttachPlan(
            function_name=existing.function_name,
            snapshot=replace(existing, session=session),
            target=replace(
                current, timeout_seconds=timeout_seconds or current.timeout_seconds
            ),
            grant_policy=False,
            previous=existing,
            change_timeout=bool(timeout_seconds)
            and timeout_seconds != current.timeout_seconds,
        )

    def _check_unchanged(self, plan: AttachPlan) -> None:
        # Whatever changed since the snapshot would be lost by the restore.
        configuration = self._configurations.get(plan.function_name) or {}
        if FunctionState.of(configuration) != plan.snapshot.state:
            raise AttachError(
                plan.function_name,
                "its configuration changed while it was being attached; try again.",
            )

    def _proxy_variables(self, outputs: StackOutputs) -> dict[str, str]:
        proxy = self._configurations.get(outputs.proxy_function_name)
        if proxy is None:
            raise ConfigurationError(
                f"The proxy function {outputs.proxy_function_name} of stack "
                f"{outputs.stack_name} is missing; run `mless deploy` again."
            )
        variables = (proxy.get("Environment") or {}).get("Variables") or {}
        return {
            name: value
            for name, value in variables.items()
            if name.startswith(PROXY_VARIABLE_PREFIX)
        }

    def _policy_was_attached(
        self, role_name: str, policy_arn: str, outputs: StackOutputs, name: str
    ) -> bool:
        """Whether the policy was on the role before mless attached any function."""
        for other in self.attached(outputs):
            if other.role_name == role_name and other.function_name != name:
                return other.policy_was_attached
        return self._configurations.role_has_policy(role_name, policy_arn)

    def _notes(self, configuration: Mapping[str, Any]) -> Iterator[str]:
        name = configuration["FunctionName"]
        if (configuration.get("VpcConfig") or {}).get("SubnetIds"):
            yield (
                f"{name} runs in a VPC: the proxy reaches SQS only through a NAT "
                "gateway or an SQS VPC endpoint."
            )


def _original_handler_variable(state: FunctionState) -> dict[str, str]:
    """MLESS_ORIGINAL_HANDLER: the function's own handler, for mirror mode.

    The proxy can run it in place only in its own runtime, Python's.
    """
    if not (state.runtime or "").startswith("python") or not state.handler:
        return {}
    return {"MLESS_ORIGINAL_HANDLER": state.handler}


def _check_attachable(name: str, configuration: Mapping[str, Any]) -> None:
    if configuration.get("PackageType") == "Image":
        raise AttachError(
            name,
            "it is a container image, whose handler and runtime cannot be changed; "
            "mless attaches .zip functions only.",
        )
    if (configuration.get("Environment") or {}).get("Error"):
        error = configuration["Environment"]["Error"].get("Message", "")
        raise AttachError(
            name,
            f"its environment cannot be read, so it could not be restored: {error}",
        )
    if len(configuration.get("Layers") or []) >= MAX_LAYERS:
        raise AttachError(
            name,
            f"it already has {MAX_LAYERS} layers, Lambda's limit; the proxy needs one.",
        )
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    taken = sorted(v for v in variables if v.startswith(PROXY_VARIABLE_PREFIX))
    if taken:
        raise AttachError(
            name,
            f"its variables {', '.join(taken)} use the prefix the proxy reserves.",
        )


def _account_region(outputs: StackOutputs) -> str:
    return arn_account_region(outputs.request_queue_arn)
