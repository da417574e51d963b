"""Detaching a function: putting back exactly what its snapshot recorded.

Detaching puts the recorded configuration back in one update (less the layer
versions deleted in the meantime, which Lambda refuses), takes the policy
back unless another attached function shares the role or it was there
before, compares the result with the snapshot field by field, and forgets the
snapshot. A function that another tool redeployed in the meantime no longer
runs the proxy: its configuration is left as deployed and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import AwsError, ConfigurationError
from bridge.function_configuration import AttachmentState, FunctionConfigurations
from bridge.snapshots import FunctionState, Snapshot, SnapshotStore


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


class Detacher:
    """Puts attached functions back as their snapshots recorded them."""

    def __init__(
        self, configurations: FunctionConfigurations, snapshots: SnapshotStore
    ) -> None:
        self._configurations = configurations
        self._snapshots = snapshots

    def plan_detach(self, function: str | Snapshot) -> DetachPlan:
        """Decide how to detach a function, from its snapshot here or in AWS."""
        if isinstance(function, Snapshot):
            snapshot: Snapshot | None = function
            configuration = self._configurations.get(function.function_name)
        else:
            configuration = self._configurations.get(function)
            snapshot = None
            if configuration is not None:
                snapshot = self._snapshots.find(
                    configuration["FunctionName"], configuration["FunctionArn"]
                )
            snapshot = snapshot or self._snapshots.find_here(function)
        if snapshot is None:
            raise ConfigurationError(
                f"Function {function} is not attached: no snapshot of it was found "
                "on this machine or in AWS."
            )
        state = self._configurations.state_of(snapshot, configuration)
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
            problems += self._configurations.restore(snapshot, None)
        else:
            notes.append(f"{plan.state.value}; its configuration was left as it is")
        if plan.revoke_policy:
            try:
                self._configurations.revoke(snapshot)
            except AwsError as exc:
                problems.append(
                    f"the policy {snapshot.policy_arn} is still on role "
                    f"{snapshot.role_name}: {exc}"
                )
        differences: list[str] = []
        if plan.state is AttachmentState.ATTACHED:
            configuration = self._configurations.get(snapshot.function_name) or {}
            differences = snapshot.state.differences(FunctionState.of(configuration))
        if differences or problems:
            kept = self._snapshots.local.archive(snapshot)
            notes.append(f"the snapshot is kept at {kept}")
        self._snapshots.forget(snapshot)
        return DetachReport(
            function_name=snapshot.function_name,
            restored=plan.state is AttachmentState.ATTACHED,
            differences=tuple(differences),
            problems=tuple(problems),
            notes=tuple(notes),
        )

    def _role_shared(self, snapshot: Snapshot) -> bool:
        """Whether another function attached to the same stack has the same role."""
        return any(
            other.role_name == snapshot.role_name
            and other.function_name != snapshot.function_name
            for other in self._snapshots.of_stack(
                snapshot.stack_name, snapshot.account_region, snapshot.bucket
            )
        )


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
