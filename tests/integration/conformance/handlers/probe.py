"""Handlers that report what they see, so tests can compare it with Lambda."""

import ctypes
import decimal
import logging
import os
import signal
import sys
import tempfile
import time

# Init runs once per execution environment; invocations count up from there.
INITS = {"count": 0}
INITS["count"] += 1
INVOCATIONS = {"count": 0}


def context_types(event, context):
    """Every attribute of the context, with the name of its type."""
    names = [
        "aws_request_id",
        "log_group_name",
        "log_stream_name",
        "function_name",
        "memory_limit_in_mb",
        "function_version",
        "invoked_function_arn",
        "client_context",
        "identity",
        "tenant_id",
    ]
    remaining = context.get_remaining_time_in_millis()
    return {
        "values": {name: _plain(getattr(context, name)) for name in names},
        "types": {name: type(getattr(context, name)).__name__ for name in names},
        "remaining": remaining,
        "remaining_type": type(remaining).__name__,
        "identity": {
            "cognito_identity_id": context.identity.cognito_identity_id,
            "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        },
        "log_is_callable": callable(context.log),
        "repr": repr(context),
    }


def client_context(event, context):
    """What the caller's client context looks like from inside."""
    sent = context.client_context
    client = sent.client
    return {
        "custom": sent.custom,
        "env": sent.env,
        "client": {
            "installation_id": client.installation_id,
            "app_title": client.app_title,
            "app_version_name": client.app_version_name,
            "app_version_code": client.app_version_code,
            "app_package_name": client.app_package_name,
        },
    }


def trace_context(event, context):
    """The W3C trace context the caller sent, and the client context without it."""
    return {"w3c": context.w3c(), "custom": context.client_context.custom}


def remaining_time(event, context):
    return context.get_remaining_time_in_millis()


def context_log(event, context):
    context.log("written with context.log\n")
    return None


def _plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def environment(event, context):
    """The process environment, the working directory and the local time zone."""
    return {
        "variables": dict(os.environ),
        "cwd": os.getcwd(),
        "zone": time.strftime("%Z", time.localtime(0)),
        "tmp": tempfile.gettempdir(),
    }


def mark_environment(event, context):
    """Set a variable, wait while other invocations run, read it back."""
    os.environ["MARK"] = context.aws_request_id
    time.sleep(event.get("sleep", 0.5))
    return {
        "request_id": context.aws_request_id,
        "mark": os.environ["MARK"],
        "pid": os.getpid(),
    }


def counters(event, context):
    """How often init and invocations ran in this environment."""
    INVOCATIONS["count"] += 1
    return {
        "inits": INITS["count"],
        "invocations": INVOCATIONS["count"],
        "pid": os.getpid(),
    }


def scratch(event, context):
    """Write a file in /tmp on the first call, read it back on later ones."""
    path = os.path.join(tempfile.gettempdir(), "conformance-marker.txt")
    found = None
    if os.path.exists(path):
        with open(path) as marker:
            found = marker.read()
    with open(path, "w") as marker:
        marker.write(context.aws_request_id)
    return {"found": found, "dir": tempfile.gettempdir(), "pid": os.getpid()}


def busy(event, context):
    """Run for a while and say when, to show which invocations overlapped."""
    started = time.time()
    time.sleep(event.get("sleep", 0.5))
    return {"pid": os.getpid(), "started": started, "ended": time.time()}


def version(event, context):
    return {
        "version": list(sys.version_info[:2]),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
    }


# --- Errors -----------------------------------------------------------------


class PaymentDeclined(Exception):
    pass


def fail_deep(event, context):
    return _charge(event)


def _charge(event):
    raise PaymentDeclined(f"card {event['card']} declined")


def fail_when_asked(event, context):
    if event.get("card"):
        fail_deep(event, context)
    return os.getpid()


# --- Marshalling ------------------------------------------------------------


def returns(event, context):
    """Return the value the event names, to see how Lambda would serialize it."""
    case = event["case"]
    if case == "decimal":
        return {"price": decimal.Decimal("3.14159265358979323846264338327950288")}
    if case == "bytes":
        return b"\x00\xff raw bytes"
    if case == "set":
        return {"tags": {"a"}}
    if case == "text":
        return {"text": event["text"]}
    if case == "none":
        return None
    if case == "too_large":
        return "x" * (6 * 1024 * 1024 + 100)
    raise ValueError(f"unknown case {case!r}")


# --- Timeouts and crashes ---------------------------------------------------


def sleep(event, context):
    time.sleep(event.get("seconds", 30))
    return "late"


def crash(event, context):
    """End the process the way the event says."""
    how = event["how"]
    print(f"about to {how}")
    if how == "sys.exit":
        sys.exit(event.get("status"))
    if how == "os._exit":
        os._exit(event["status"])
    if how == "segfault":
        ctypes.string_at(0)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise ValueError(f"unknown way {how!r}")


# --- Logs -------------------------------------------------------------------


def interleave(event, context):
    """Write to stdout and stderr in turn, the last line without a newline."""
    print("one")
    print("two", file=sys.stderr)
    print("three")
    sys.stdout.write("four, no newline")
    return None


def chatter(event, context):
    """Write several lines, with pauses, while other invocations do too."""
    for index in range(5):
        print(f"{context.aws_request_id} line {index}")
        time.sleep(0.05)
    return context.aws_request_id


def log_records(event, context):
    logger = logging.getLogger("probe")
    logger.debug("debug %s", "record")
    logger.info("info %s", "record")
    logger.warning("warning %s", "record")
    return None


def allocate(event, context):
    """Hold some memory, touched so that it is resident."""
    block = bytearray(event["megabytes"] * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    time.sleep(event.get("then_sleep", 0))
    return len(block)
