"""Handlers for the offline, mirror and library-mode tests: each says where it ran."""

import os
import time

from lambda_proxy.library import forward_to_lab


def _where():
    # Lambda (the local cloud's stand-in) gives the function the stack's
    # MLESS_* variables; the lab hands a handler none of them.
    return "aws" if "MLESS_REQUEST_QUEUE_URL" in os.environ else "lab"


def _event_id(event):
    records = event.get("Records") if isinstance(event, dict) else None
    if records:
        return records[0]["s3"]["object"]["key"]
    return event.get("id", "?")


def _note(line):
    # One write per line on a file opened for appending: lines written by
    # several processes never interleave.
    path = os.path.join(os.environ["RECORD_DIR"], "executions.log")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


def record(event, context):
    """Note this execution's event id and where it ran; answer both. Maybe sleep."""
    where = _where()
    _note(f"{_event_id(event)} {where}")
    time.sleep(event.get("sleep", 0) if isinstance(event, dict) else 0)
    return {"id": _event_id(event), "where": where}


@forward_to_lab(when=lambda event: event.get("debug") is True)
def picked(event, context):
    """Library mode: only events with "debug": true may run in the lab."""
    return record(event, context)
