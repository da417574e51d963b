"""Catching up: what the lab does with invocations that waited for it.

A request nobody waits for (mode async or mirror: it has no reply queue)
stays in the request queue for as long as the lab is away. When the lab
comes back:

- the poller takes what waits first and starts it oldest first, by the time
  SQS received each message (see `Poller`; beyond the first batches the order
  is SQS's, which for a standard queue is roughly, not strictly, the order
  sent);
- each runs with a deadline of its own, the function's timeout from when it
  starts, as Lambda gives an asynchronous invocation when it runs it;
- each that waited longer than LATE_AFTER_SECONDS is shown with how late it
  is;
- one older than the maximum event age (Lambda's default, 6 hours; set with
  MLESS_MAX_EVENT_AGE_SECONDS or `Lab(max_event_age_seconds=)`) is never run:
  it goes to the dead-letter queue, with a log line that says why.

A request a caller waited for (mode sync) whose deadline passed while it
waited is never run either: the dispatcher skips it and says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from bridge.clock import now_ms
from bridge.errors import ConfigurationError
from lambda_proxy import wire

logger = logging.getLogger(__name__)

# Lambda's default MaximumEventAgeInSeconds for asynchronous invocations.
DEFAULT_MAX_EVENT_AGE_SECONDS = 21600
MAX_EVENT_AGE_VARIABLE = "MLESS_MAX_EVENT_AGE_SECONDS"
# A request the lab receives while serving is a few tens of milliseconds old;
# one this old waited for the lab.
LATE_AFTER_SECONDS = 1.0

Message = dict[str, Any]


class CatchUp:
    """Decides, for each request nobody waits for, whether and when it runs.

    `notify` shows the lab's own lines (the console's `note`); by default
    they are logged at INFO.
    """

    def __init__(
        self,
        max_event_age_seconds: float | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if max_event_age_seconds is None:
            max_event_age_seconds = max_event_age_from(os.environ)
        if max_event_age_seconds <= 0:
            raise ConfigurationError(
                f"The maximum event age must be a positive number of seconds, "
                f"not {max_event_age_seconds}."
            )
        self.max_event_age_seconds = max_event_age_seconds
        self._notify = notify or logger.info

    def too_old(self, request: wire.Request, sent_at_ms: int) -> str | None:
        """Why a request must not run because of its age, or None if it may.

        `sent_at_ms` is when the proxy sent it, in the lab's clock.
        """
        if not waits_for_nobody(request):
            return None
        age_seconds = (now_ms() - sent_at_ms) / 1000
        if age_seconds <= self.max_event_age_seconds:
            return None
        return (
            f"request {request['request_id']} of {request['function']['name']} is "
            f"{describe_seconds(age_seconds)} old, older than the maximum event "
            f"age of {describe_seconds(self.max_event_age_seconds)}"
        )

    def deadline_ms(
        self, request: wire.Request, deadline_ms: int, sent_at_ms: int
    ) -> int:
        """The deadline to run a request with, starting now; shows how late it is.

        A request a caller waits for keeps the caller's deadline.
        """
        if not waits_for_nobody(request):
            return deadline_ms
        started_ms = now_ms()
        late_seconds = (started_ms - sent_at_ms) / 1000
        if late_seconds >= LATE_AFTER_SECONDS:
            self._notify(
                f"{request['function']['name']}: request {request['request_id']} "
                f"({request['mode']}) runs {describe_seconds(late_seconds)} late"
            )
        return started_ms + request["function"]["timeout_ms"]


def waits_for_nobody(request: wire.Request) -> bool:
    """Whether no caller waits for the request's reply (async and mirror copies)."""
    return request["reply_to"] is None


def oldest_first(messages: Iterable[Message]) -> list[Message]:
    """Messages in the order SQS received them (SentTimestamp), oldest first."""
    return sorted(messages, key=_sent_timestamp)


def max_event_age_from(environ: os._Environ[str] | dict[str, str]) -> float:
    """The maximum event age MLESS_MAX_EVENT_AGE_SECONDS sets, or Lambda's default."""
    text = environ.get(MAX_EVENT_AGE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_EVENT_AGE_SECONDS
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(
            f"{MAX_EVENT_AGE_VARIABLE} is {text[:40]!r}; give a number of seconds "
            f"(Lambda's default is {DEFAULT_MAX_EVENT_AGE_SECONDS})."
        ) from None


def describe_seconds(seconds: float) -> str:
    """A duration as a person reads it: 3.2 s, 4 min 10 s, 6.0 h."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes} min {rest} s"
    return f"{seconds / 3600:.1f} h"


def _sent_timestamp(message: Message) -> float:
    stamp = message.get("Attributes", {}).get("SentTimestamp")
    try:
        return float(stamp)
    except (TypeError, ValueError):
        return float("inf")
