"""Handlers the integration tests run in the lab."""

import os
import time

_COLD = {"invocations": 0}


def echo(event, context):
    """Return the event unchanged."""
    return event


def describe(event, context):
    """Return what the handler can see of its invocation."""
    _COLD["invocations"] += 1
    print("describing", context.aws_request_id)
    return {
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "invocations_in_this_environment": _COLD["invocations"],
        "pid": os.getpid(),
        "greeting": os.environ.get("GREETING"),
        "region": os.environ.get("AWS_REGION"),
    }


def slow_echo(event, context):
    """Take a while, so that invocations overlap, then return the event."""
    time.sleep(event.get("sleep", 0.3))
    return {"id": event["id"], "pid": os.getpid()}


def fail(event, context):
    raise ValueError(f"no good: {event.get('why', 'because')}")


def sleep_past_timeout(event, context):
    time.sleep(30)
