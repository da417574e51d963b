"""The lab's heartbeat: tells every proxy, through S3 alone, that a lab is serving.

While the lab runs, a thread rewrites one small object in the stack's payload
bucket (`lambda_proxy.presence.HEARTBEAT_KEY`) every BEAT_SECONDS with the
state "serving", the lab's name and the functions it serves. Proxies read it
(see lambda_proxy/presence.py) and judge its age by S3's own clock. On stop
the object is overwritten at once with the state "stopped", so proxies see
the lab offline as soon as what they read expires, within a few seconds; a
lab killed outright is seen offline once its heartbeat is
OFFLINE_AFTER_SECONDS old. The object is never deleted (why: presence.py).

A write that fails is tried again at the next beat and logged at DEBUG only:
the poller already says when AWS is out of reach, and a lab that cannot
write its heartbeat cannot be reached by its proxies' requests either.

One lab per stack: labs serving the same stack would split its requests
and share one heartbeat, so `mless run` refuses to start while
`other_lab_serving` names another.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any, Literal

from bridge.clock import now_ms
from lambda_proxy.presence import (
    BEAT_SECONDS,
    HEARTBEAT_KEY,
    HEARTBEAT_VERSION,
    HeartbeatBody,
    Presence,
    judge,
)

logger = logging.getLogger(__name__)

# `start` waits this long for the first beat, so that proxies find the lab
# online as soon as it serves; a slower S3 delays nothing else.
FIRST_BEAT_WAIT_SECONDS = 2.0
# `stop` waits this long for the "stopped" beat to be written.
LAST_BEAT_WAIT_SECONDS = 3.0


class LabHeartbeat:
    """Publishes that this lab serves, every `beat_seconds`, until stopped."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        functions: Iterable[str],
        *,
        beat_seconds: float = BEAT_SECONDS,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._functions = sorted(functions)
        self._beat_seconds = beat_seconds
        self.lab = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = threading.Event()
        self._first_beat = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0  # heartbeats written, "stopped" included

    def start(self) -> None:
        """Start beating; return once the first beat is written, or soon after."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._beat_until_stopped, name="mless-lab-heartbeat", daemon=True
        )
        self._thread.start()
        self._first_beat.wait(FIRST_BEAT_WAIT_SECONDS)

    def stop(self) -> None:
        """Say at once that the lab stopped (once); return when said, or soon after."""
        if self._thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join(LAST_BEAT_WAIT_SECONDS)

    def _beat_until_stopped(self) -> None:
        self._publish("serving")
        self._first_beat.set()
        while not self._stopping.wait(self._beat_seconds):
            self._publish("serving")
        self._publish("stopped")

    def _publish(self, state: Literal["serving", "stopped"]) -> None:
        body: HeartbeatBody = {
            "v": HEARTBEAT_VERSION,
            "state": state,
            "lab": self.lab,
            "functions": self._functions,
            "at_ms": now_ms(),
        }
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=HEARTBEAT_KEY,
                Body=json.dumps(body).encode("utf-8"),
                ContentType="application/json",
            )
        except Exception as exc:
            logger.debug("Could not write the lab's heartbeat (%s): %s", state, exc)
            return
        self.beats += 1


def other_lab_serving(s3: Any, bucket: str) -> str | None:
    """The name ("host:pid") of a lab that serves the stack now, or None.

    A heartbeat that says "serving" and is fresh names a running lab, unless
    a process of this machine wrote it that no longer exists: a lab that was
    killed leaves a fresh heartbeat behind for a few seconds, and the run
    that recovers from it must not wait for that.
    """
    try:
        response = s3.get_object(Bucket=bucket, Key=HEARTBEAT_KEY)
        body = response["Body"].read()
        written_at = response["LastModified"].timestamp()
    except Exception as exc:
        # No heartbeat yet, or none readable: nothing says a lab serves.
        logger.debug("Could not read the lab's heartbeat: %s", exc)
        return None
    if judge(body, written_at, time.time()).presence is not Presence.ONLINE:
        return None
    name = str(json.loads(body).get("lab", ""))
    host, _, pid = name.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _running(int(pid)):
        return None
    return name or "another lab"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
