"""Serving until Ctrl+C or SIGTERM, then stopping without losing a request.

The first signal stops the lab gracefully: it stops receiving, makes the
request messages it received but had not started visible again at once (for
the next lab to take), and lets running invocations finish within a grace
period, in which it also wakes the long polls on their way (`wakes`) and
waits for them, so that what they bring in is made visible again too;
`serve_until_signalled` then returns 0. A second signal while that
happens exits at once (status 130): running invocations are cut short, and
their messages return to the queue after the visibility timeout.

Signal handlers can only be installed from the main thread.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from bridge.poller import Poller

logger = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30.0
# What a shell reports for a process ended by Ctrl+C (128 + SIGINT).
EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long exiting at once waits for the execution environments to be stopped.
ABORT_SECONDS = 2.0
# How often the main thread looks up from waiting, so signals are handled
# promptly on every platform.
WAKE_SECONDS = 0.5


class Servable(Protocol):
    """What serving needs of a lab (`bridge.lab.Lab` is one)."""

    poller: Poller

    def start(self) -> Any: ...

    def stop(self, grace_seconds: float = ...) -> None: ...

    def abort(self) -> None: ...


def serve_until_signalled(
    lab: Servable,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    note: Callable[[str], None] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM, stop gracefully, and return the exit status.

    Starts the lab if it has not started. `note` shows the lab's own lines to
    the user (the console's `note`); by default they are logged.
    """
    say = note or logger.warning
    requested = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        if requested.is_set():
            _exit_at_once(lab, say)
        requested.set()

    previous = {number: signal.signal(number, on_signal) for number in STOP_SIGNALS}
    try:
        if not lab.poller.started:
            lab.start()
        while not requested.wait(WAKE_SECONDS):
            pass
        running = lab.poller.running_count
        say(
            f"Stopping: {running} invocation(s) running; waiting up to "
            f"{grace_seconds:.0f} s for them and for the last long polls. Press "
            "Ctrl+C again to exit at once."
        )
        lab.stop(grace_seconds)
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def _exit_at_once(lab: Servable, say: Callable[[str], None]) -> None:
    say("Exiting at once; running invocations are cut short.")
    # Stop the execution environments (they run in sessions of their own and
    # would outlive the lab) from another thread: this one may hold a lock
    # that stopping them needs. Exit whether or not that is done in time.
    stopper = threading.Thread(target=lab.abort, daemon=True)
    stopper.start()
    stopper.join(ABORT_SECONDS)
    os._exit(EXIT_INTERRUPTED)
