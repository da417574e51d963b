"""How the lab calls AWS: transient failures retried, AWS out of reach said once.

Throttling, 5xx answers and lost connections pass; the lab must ride them
out rather than die or drop what it holds. Each call of the lab's SQS and S3
clients goes through an `AwsCaller`, which retries transient failures with
exponential backoff and full jitter (so several receivers that failed
together do not retry together) for as long as its caller can wait. A
`Reachability` watches every call: after `warn_after_seconds` without one
answer from AWS it logs one warning, and one more line when AWS answers
again; the retries in between log at DEBUG only.

botocore's own retries (standard mode, see `bridge.aws`) run inside each
attempt; these come on top, for outages longer than botocore waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_any,
    stop_never,
    stop_when_event_set,
    wait_random_exponential,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNREACHABLE_WARNING_SECONDS = 30.0
# Backoff between attempts: up to 0.2 s after the first failure, doubling to
# at most 5 s, so a lab that lost AWS notices its return within seconds.
BACKOFF_FIRST_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0

# Error codes AWS answers when a call may succeed if made again later.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMS.ThrottlingException",
    }
)
_TRANSIENT_EXCEPTIONS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed AWS call may succeed if made again."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in TRANSIENT_ERROR_CODES or int(status or 0) >= 500
    return isinstance(exc, _TRANSIENT_EXCEPTIONS)


class Reachability:
    """Warns once when AWS has not answered for a while, and once when it does again."""

    def __init__(
        self,
        warn_after_seconds: float = UNREACHABLE_WARNING_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.warn_after_seconds = warn_after_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_answer = clock()
        self._warned_at: float | None = None

    @property
    def unreachable(self) -> bool:
        """Whether the warning is out and AWS has not answered since."""
        with self._lock:
            return self._warned_at is not None

    def answered(self) -> None:
        """AWS answered a call (an error it returned counts)."""
        with self._lock:
            now = self._clock()
            silent_for = now - self._last_answer
            warned, self._warned_at = self._warned_at, None
            self._last_answer = now
        if warned is not None:
            logger.warning(
                "AWS answers again after %.0f s out of reach; the lab serves on.",
                silent_for,
            )

    def failed(self, exc: BaseException) -> None:
        """A call failed without an answer, or with one that says try later."""
        with self._lock:
            now = self._clock()
            silent_for = now - self._last_answer
            if self._warned_at is not None or silent_for < self.warn_after_seconds:
                return
            self._warned_at = now
        logger.warning(
            "AWS has not answered the lab for %.0f s (last error: %s); the lab "
            "keeps retrying and holds on to what it received.",
            silent_for,
            exc,
        )


class AwsCaller:
    """Makes AWS calls, retrying transient failures within each call's time."""

    def __init__(
        self,
        reachability: Reachability | None = None,
        *,
        first_backoff_seconds: float = BACKOFF_FIRST_SECONDS,
        max_backoff_seconds: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self.reachability = reachability or Reachability()
        self._wait = wait_random_exponential(
            multiplier=first_backoff_seconds, max=max_backoff_seconds
        )

    def call(
        self,
        operation: Callable[..., T],
        *,
        within_seconds: float | None = None,
        cancel: threading.Event | None = None,
        **params: Any,
    ) -> T:
        """Call `operation(**params)`, retrying while it fails transiently.

        Retries stop after `within_seconds` (never, when None) or once
        `cancel` is set; the last error is then raised. Errors that are not
        transient are raised at once.
        """
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=self._wait,
            stop=_stop(within_seconds, cancel),
            before_sleep=_log_retry,
            reraise=True,
        )
        result: T = retrying(self._attempt, operation, params)
        return result

    def _attempt(self, operation: Callable[..., T], params: dict[str, Any]) -> T:
        try:
            result = operation(**params)
        except ClientError as exc:
            if is_transient(exc):
                self.reachability.failed(exc)
            else:
                self.reachability.answered()
            raise
        except Exception as exc:
            if is_transient(exc):
                self.reachability.failed(exc)
            raise
        self.reachability.answered()
        return result


def _stop(within_seconds: float | None, cancel: threading.Event | None) -> Any:
    if within_seconds is None:
        limit: Any = stop_never
    else:
        limit = stop_after_delay(max(0.0, within_seconds))
    if cancel is None:
        return limit
    return stop_any(limit, stop_when_event_set(cancel))


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    logger.debug(
        "AWS call failed (attempt %d, %s); retrying in %.2f s",
        state.attempt_number,
        error,
        state.upcoming_sleep,
    )
