"""Handlers for the reliability tests: each leaves a trace the test can count."""

import hashlib
import os
import random
import time


def _note(line):
    # One write per line on a file opened for appending: lines from several
    # execution environments never interleave.
    path = os.path.join(os.environ["RECORD_DIR"], "executions.log")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


def record(event, context):
    """Note the start and end of this execution by the event's id; maybe sleep,
    or wait until the test creates the file `until` names (for 30 s at most)."""
    _note(f"start {event['id']} {os.getpid()} {context.aws_request_id}")
    time.sleep(event.get("sleep", 0))
    give_up_at = time.monotonic() + 30
    while "until" in event and not os.path.exists(event["until"]):
        if time.monotonic() > give_up_at:
            raise TimeoutError(f"{event['until']} never appeared")
        time.sleep(0.02)
    _note(f"end {event['id']} {os.getpid()}")
    return {"id": event["id"], "pid": os.getpid()}


def sized(event, context):
    """Describe the event's blob, and answer with `response_bytes` seeded bytes."""
    blob = event.get("blob", "").encode("utf-8")
    summary = f"{hashlib.sha256(blob).hexdigest()} {len(blob)}"
    print("received", summary)
    response = random.Random(event["seed"]).randbytes(event["response_bytes"])
    return summary.encode() + b"\n" + response


def capture_credentials(event, context):
    """Write the credentials this invocation got to CAPTURE_FILE; maybe fail."""
    with open(os.environ["CAPTURE_FILE"], "a") as capture:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            capture.write(os.environ.get(name, "") + "\n")
    print("handled", event.get("n"))
    if event.get("fail"):
        raise ValueError("refused on purpose")
    return {"n": event.get("n"), "blob": event.get("blob", "")[:10]}
