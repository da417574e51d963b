"""The lab: one poller and one pool per function, started and stopped together."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from bridge.config import FunctionSettings
from bridge.environments.pool import InvocationLog, Pool
from bridge.environments.variables import Platform
from bridge.poller import POLL_WAIT_SECONDS, OutcomeListener, Poller, Queues

logger = logging.getLogger(__name__)


class Lab:
    """Serves a stack's request queue with local code for the given functions."""

    def __init__(
        self,
        sqs: Any,
        queues: Queues,
        functions: Iterable[FunctionSettings],
        log: InvocationLog,
        *,
        endpoint_url: str | None = None,
        receivers: int = 4,
        poll_wait_seconds: int = POLL_WAIT_SECONDS,
        on_outcome: OutcomeListener | None = None,
    ) -> None:
        platform = Platform(endpoint_url=endpoint_url)
        self.pools = {
            settings.name: Pool(settings, log, platform) for settings in functions
        }
        self.poller = Poller(
            sqs,
            queues,
            self.pools,
            receivers=receivers,
            poll_wait_seconds=poll_wait_seconds,
            on_outcome=on_outcome,
        )

    def start(self) -> Lab:
        self.poller.start()
        return self

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop receiving, let running invocations finish, then stop environments."""
        self.poller.stop(grace_seconds)
        for pool in self.pools.values():
            pool.close()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
