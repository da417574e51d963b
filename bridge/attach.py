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

If the switch fails, the grant and the snapshot are undone. Detaching puts
the recorded configuration back in one update (less the layer versions
deleted in the meantime, which Lambda refuses), takes the policy back unless
another attached function shares the role or it was there before, compares
the result with the snapshot field by field, and forgets the snapshot. A
function that another tool redeployed in the meantime no longer runs the
proxy: its configuration is left as deployed and the report says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol

from botocore.exceptions import ClientError, WaiterError

from bridge.errors import (
    AttachError,
    AwsError,
    ConfigurationError,
    calling_aws,
    error_code,
)
from bridge.function_catalog import DeployedFunction
from bridge.proxy_layer import find_proxy_layer, proxy_layer_name, unversioned
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

PROXY_HANDLER = "lambda_proxy.handler.handler"
PROXY_RUNTIME = "python3.12"
PROXY_VARIABLE_PREFIX = "MLESS_"
DEBUG_TIMEOUT_SECONDS = 900
# Lambda allows five layers; the proxy's takes one of them.
MAX_LAYERS = 5
# Lambda applies a configuration change in a few seconds; these bound a stuck one.
UPDATE_POLL_SECONDS = 1
UPDATE_POLL_ATTEMPTS = 300


class ClientFactory(Protocol):
    """Makes boto3 clients (bridge.aws.Clients is one)."""

    def client(self, service: str) -> Any: ...


class AttachmentState(Enum):
    """Whether an attached function still runs the proxy."""

    ATTACHED = "attached"
    REDEPLOYED = "redeployed by another tool: no longer runs the proxy"
    MISSING = "no longer exists"


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


@dataclass(frozen=True)
class DetachPlan:
    """What detaching one function will do."""

    snapshot: Snapshot
    state: AttachmentState
    revoke_policy: bool

    @property
    def function_name(self) -> str:
        return self.snapshot.function_name

    def steps(self) -> list[str]:
        """The plan in words, one line per step."""
        name = self.function_name
        lines = []
        if self.state is AttachmentState.ATTACHED:
            lines.append(
                f"{name}: restore the configuration recorded {self.snapshot.taken_at}"
            )
        else:
            lines.append(f"{name}: {self.state.value}; leave it as it is")
        if self.revoke_policy:
            lines.append(
                f"{name}: detach {self.snapshot.policy_arn} from role "
                f"{self.snapshot.role_name}"
            )
        lines.append(f"{name}: forget the snapshot")
        return lines


@dataclass(frozen=True)
class DetachReport:
    """How a detach went: exact when `differences` and `problems` are empty."""

    function_name: str
    restored: bool
    differences: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return not self.differences and not self.problems


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
        self._iam = clients.client("iam")
        self.snapshots = SnapshotStore(self._lambda, clients.client("s3"), local)
        self._poll_seconds = poll_seconds

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
        configuration = self._configuration(function)
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
            and not self._role_has_policy(role_name, snapshot.policy_arn),
            notes=tuple(self._notes(configuration)),
        )

    def attach(self, plan: AttachPlan) -> Snapshot:
        """Carry out an attach plan; on failure, undo what was done and raise."""
        if plan.previous is not None:
            self.snapshots.record(plan.snapshot)
            if plan.change_timeout:
                self._update(
                    plan.function_name, {"Timeout": plan.target.timeout_seconds}
                )
            return plan.snapshot
        granted = False
        try:
            self.snapshots.record(plan.snapshot)
            if plan.grant_policy:
                self._grant(plan.snapshot)
                granted = True
            self._check_unchanged(plan)
            self._update(plan.function_name, plan.target.update_arguments())
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
            configuration = self._configuration(plan.function_name) or {}
            current = FunctionState.of(configuration)
            if current != plan.snapshot.state:
                self._restore(plan.snapshot, current)
            if granted:
                self._revoke(plan.snapshot)
            self.snapshots.forget(plan.snapshot)
        except Exception:
            # The failure that started this is the one to report; a snapshot
            # left behind is found by `mless detach` and `mless status`.
            logger.exception("Undoing the attach of %s failed", plan.function_name)

    # -- detach -----------------------------------------------------------------

    def plan_detach(self, function: str | Snapshot) -> DetachPlan:
        """Decide how to detach a function, from its snapshot here or in AWS."""
        if isinstance(function, Snapshot):
            snapshot: Snapshot | None = function
            configuration = self._configuration(function.function_name)
        else:
            configuration = self._configuration(function)
            snapshot = None
            if configuration is not None:
                snapshot = self.snapshots.find(
                    configuration["FunctionName"], configuration["FunctionArn"]
                )
            snapshot = snapshot or self.snapshots.find_here(function)
        if snapshot is None:
            raise ConfigurationError(
                f"Function {function} is not attached: no snapshot of it was found "
                "on this machine or in AWS."
            )
        state = self.state_of(snapshot, configuration)
        return DetachPlan(
            snapshot=snapshot,
            state=state,
            revoke_policy=not snapshot.policy_was_attached
            and not self._role_shared(snapshot),
        )

    def detach(self, plan: DetachPlan) -> DetachReport:
        """Carry out a detach plan and report how exact the restore was."""
        snapshot = plan.snapshot
        notes: list[str] = []
        problems = []
        if plan.state is AttachmentState.ATTACHED:
            problems += self._restore(snapshot, None)
        else:
            notes.append(f"{plan.state.value}; its configuration was left as it is")
        if plan.revoke_policy:
            try:
                self._revoke(snapshot)
            except AwsError as exc:
                problems.append(
                    f"the policy {snapshot.policy_arn} is still on role "
                    f"{snapshot.role_name}: {exc}"
                )
        differences: list[str] = []
        if plan.state is AttachmentState.ATTACHED:
            configuration = self._configuration(snapshot.function_name) or {}
            differences = snapshot.state.differences(FunctionState.of(configuration))
        if differences or problems:
            kept = self.snapshots.local.archive(snapshot)
            notes.append(f"the snapshot is kept at {kept}")
        self.snapshots.forget(snapshot)
        return DetachReport(
            function_name=snapshot.function_name,
            restored=plan.state is AttachmentState.ATTACHED,
            differences=tuple(differences),
            problems=tuple(problems),
            notes=tuple(notes),
        )

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
        configuration = self._configuration(function)
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
            name, state.handler, state.runtime, self._reserved_concurrency(name)
        )

    def _reserved_concurrency(self, function: str) -> int | None:
        """The function's reserved concurrency; None when it has none (or 0)."""
        with calling_aws(f"function {function}"):
            answer = self._lambda.get_function_concurrency(FunctionName=function)
        return answer.get("ReservedConcurrentExecutions") or None

    def state_of(
        self, snapshot: Snapshot, configuration: Mapping[str, Any] | None = None
    ) -> AttachmentState:
        """Whether the function of a snapshot still runs the proxy."""
        if configuration is None:
            configuration = self._configuration(snapshot.function_name)
        if configuration is None:
            return AttachmentState.MISSING
        state = FunctionState.of(configuration)
        proxy_layer = unversioned(snapshot.proxy_layer_arn)
        runs_proxy = state.handler == PROXY_HANDLER and any(
            unversioned(arn) == proxy_layer for arn in state.layers
        )
        return AttachmentState.ATTACHED if runs_proxy else AttachmentState.REDEPLOYED

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

    def _restore(self, snapshot: Snapshot, current: FunctionState | None) -> list[str]:
        """Put a snapshot's configuration back; return what could not be.

        Given the `current` state, only the fields that differ are set.
        """
        arguments = snapshot.state.update_arguments(current)
        if not arguments:
            return []
        try:
            self._update(snapshot.function_name, arguments)
            return []
        except AwsError:
            gone = [arn for arn in snapshot.state.layers if not self._layer_exists(arn)]
            if not gone:
                raise
        # Lambda lets a function keep a layer version deleted while it used
        # it, but refuses one named anew in its configuration.
        arguments["Layers"] = [a for a in snapshot.state.layers if a not in gone]
        self._update(snapshot.function_name, arguments)
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

    def _grant(self, snapshot: Snapshot) -> None:
        with calling_aws(f"role {snapshot.role_name}"):
            self._iam.attach_role_policy(
                RoleName=snapshot.role_name, PolicyArn=snapshot.policy_arn
            )

    def _revoke(self, snapshot: Snapshot) -> None:
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

    def _update(self, function_name: str, arguments: Mapping[str, Any]) -> None:
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

    def _check_unchanged(self, plan: AttachPlan) -> None:
        # Whatever changed since the snapshot would be lost by the restore.
        configuration = self._configuration(plan.function_name) or {}
        if FunctionState.of(configuration) != plan.snapshot.state:
            raise AttachError(
                plan.function_name,
                "its configuration changed while it was being attached; try again.",
            )

    def _configuration(self, function: str) -> dict[str, Any] | None:
        try:
            configuration: dict[str, Any] = self._lambda.get_function_configuration(
                FunctionName=function
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise AwsError.from_client_error(exc, f"function {function}") from exc
        return configuration

    def _proxy_variables(self, outputs: StackOutputs) -> dict[str, str]:
        proxy = self._configuration(outputs.proxy_function_name)
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
        return self._role_has_policy(role_name, policy_arn)

    def _role_has_policy(self, role_name: str, policy_arn: str) -> bool:
        pages = self._iam.get_paginator("list_attached_role_policies").paginate(
            RoleName=role_name
        )
        with calling_aws(f"role {role_name}"):
            return any(
                policy["PolicyArn"] == policy_arn
                for page in pages
                for policy in page["AttachedPolicies"]
            )

    def _role_shared(self, snapshot: Snapshot) -> bool:
        """Whether another function attached to the same stack has the same role."""
        return any(
            other.role_name == snapshot.role_name
            and other.function_name != snapshot.function_name
            for other in self.snapshots.of_stack(
                snapshot.stack_name, snapshot.account_region, snapshot.bucket
            )
        )

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


@contextmanager
def attached_while_running(
    attacher: Attacher,
    outputs: StackOutputs,
    functions: Sequence[str],
    *,
    timeout_seconds: int | None,
    say: Callable[[str], None],
) -> Iterator[list[Snapshot]]:
    """Attach functions for one `mless run`, and detach them when it ends.

    A function attached already by `mless attach`, or by another run still
    going, is served but left attached at the end. One left attached by a
    run that ended without detaching it is taken over.
    """
    session = Session.current()
    ours: list[Snapshot] = []
    served: list[Snapshot] = []
    try:
        for function in functions:
            plan = attacher.plan_attach(
                function, outputs, timeout_seconds=timeout_seconds, session=session
            )
            previous = plan.previous
            if previous is not None and not _left_behind(previous):
                say(f"{plan.function_name} is attached already; it stays attached")
                served.append(previous)
                continue
            for note in plan.notes:
                say(f"note: {note}")
            snapshot = attacher.attach(plan)
            verb = "took over" if previous is not None else "attached"
            say(f"{verb} {plan.function_name}")
            ours.append(snapshot)
            served.append(snapshot)
        yield served
    finally:
        for snapshot in reversed(ours):
            _detach_at_the_end(attacher, snapshot, say)


def _detach_at_the_end(
    attacher: Attacher, snapshot: Snapshot, say: Callable[[str], None]
) -> None:
    # One function that cannot be detached must not keep the others attached.
    try:
        report = attacher.detach(attacher.plan_detach(snapshot))
    except Exception as exc:
        logger.debug("detaching %s failed", snapshot.function_name, exc_info=True)
        say(
            f"could not detach {snapshot.function_name}: {exc}; the next "
            f"`mless run` or `mless detach {snapshot.function_name}` restores it"
        )
        return
    for line in describe_report(report):
        say(line)


def recover_stale(
    attacher: Attacher,
    outputs: StackOutputs,
    *,
    keep: Sequence[str],
    confirm: Callable[[Snapshot], bool],
    say: Callable[[str], None],
) -> list[DetachReport]:
    """Detach what runs that ended without detaching left attached.

    Functions named in `keep` are left for the new run to take over; for the
    others, `confirm` decides, and what was done is said.
    """
    reports = []
    for snapshot in attacher.stale(outputs):
        if snapshot.function_name in keep:
            continue
        pid = snapshot.session.pid if snapshot.session else "?"
        say(
            f"{snapshot.function_name} was left attached by mless run (pid {pid}) "
            f"since {snapshot.taken_at}"
        )
        if not confirm(snapshot):
            say(f"{snapshot.function_name} stays attached; `mless detach` restores it")
            continue
        report = attacher.detach(attacher.plan_detach(snapshot))
        reports.append(report)
        for line in describe_report(report):
            say(line)
    return reports


def _left_behind(snapshot: Snapshot) -> bool:
    return snapshot.session is not None and snapshot.session.is_gone()


def describe_report(report: DetachReport) -> list[str]:
    """The lines that tell the user how a detach went."""
    name = report.function_name
    if report.restored and report.exact:
        head = f"detached {name}: restored exactly"
    elif report.restored:
        head = f"detached {name}: restored, but not exactly"
    else:
        head = f"detached {name}"
    lines = [head]
    lines += [f"  differs: {line}" for line in report.differences]
    lines += [f"  problem: {line}" for line in report.problems]
    lines += [f"  note: {line}" for line in report.notes]
    return lines


def _account_region(outputs: StackOutputs) -> str:
    return arn_account_region(outputs.request_queue_arn)
