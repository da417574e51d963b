"""Waiting for a stack operation to settle, reporting each of its events once.

CloudFormation lists a stack's events newest first, and keeps those of every
operation the stack has seen; an operation's own events are those after the
newest one seen before it began.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import takewhile
from typing import TYPE_CHECKING

from bridge.errors import AwsError, calling_aws
from bridge.stack import describe_stack

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackEventTypeDef

STACK_POLL_SECONDS = 5.0
# Creating the stack takes a minute or two; this bounds a stuck operation.
STACK_WAIT_SECONDS = 1800.0

EventCallback = Callable[[str], None]
Sleep = Callable[[float], None]

_SUCCESS = {
    "CreateStack": "CREATE_COMPLETE",
    "UpdateStack": "UPDATE_COMPLETE",
    "DeleteStack": "DELETE_COMPLETE",
}


def wait_for_stack(
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


def latest_event_ids(cloudformation: CloudFormationClient, stack: str) -> set[str]:
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


def _stack_status(cloudformation: CloudFormationClient, stack_id: str) -> str:
    stack = describe_stack(cloudformation, stack_id)
    # AWS still describes a deleted stack when asked by id; some stand-ins
    # forget it at once.
    return "DELETE_COMPLETE" if stack is None else stack["StackStatus"]
