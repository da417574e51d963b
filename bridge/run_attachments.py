"""The attachments of one `mless run`: made as it starts, undone as it ends.

A run that ends without detaching (killed, or crashed) leaves its functions
attached, their snapshots naming its session; the next run finds them, then
restores them or takes them over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from bridge.attach import Attacher
from bridge.detach import DetachReport, describe_report
from bridge.snapshots import Session, Snapshot
from bridge.stack import StackOutputs

logger = logging.getLogger(__name__)


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
