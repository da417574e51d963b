"""The lab: one poller and one pool per function, started and stopped together.

While the lab serves, its heartbeat tells the proxies it is there (see
bridge/heartbeat.py); stopping says at once that it is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from bridge.aws import clients_of, quiet_wire_logs
from bridge.catch_up import CatchUp
from bridge.environments.pool import InvocationLog, Pool
from bridge.environments.variables import Platform
from bridge.function_settings import FunctionSettings
from bridge.heartbeat import LabHeartbeat
from bridge.poller import POLL_WAIT_SECONDS, OutcomeListener, Poller, Queues
from bridge.reload import CodeWatcher
from bridge.retry import Reachability

logger = logging.getLogger(__name__)


@runtime_checkable
class LabNotes(Protocol):
    """A log that also shows lines of the lab's own (the Console does)."""

    def note(self, text: str) -> None: ...


class Lab:
    """Serves a stack's request queue with local code for the given functions.

    With `reload`, a change to a function's code makes its next invocation
    start in a new execution environment (see bridge/reload.py).
    """

    def __init__(
        self,
        sqs: Any,
        queues: Queues,
        functions: Iterable[FunctionSettings],
        log: InvocationLog,
        *,
        endpoint_url: str | None = None,
        s3: Any | None = None,
        receivers: int = 4,
        poll_wait_seconds: int = POLL_WAIT_SECONDS,
        visibility_timeout_seconds: int | None = None,
        reachability: Reachability | None = None,
        on_outcome: OutcomeListener | None = None,
        reload: bool = True,
        max_event_age_seconds: float | None = None,
    ) -> None:
        # `s3` reaches the payload bucket; by default a client made like `sqs`
        # (same endpoint, region and credentials). The visibility timeout
        # defaults to the request queue's own; the maximum event age to
        # MLESS_MAX_EVENT_AGE_SECONDS or Lambda's (see bridge/catch_up.py).
        quiet_wire_logs()
        platform = Platform(endpoint_url=endpoint_url)
        self.pools = {
            settings.name: Pool(settings, log, platform) for settings in functions
        }
        if s3 is None and queues.payload_bucket:
            s3 = clients_of(sqs, endpoint_url).client("s3")
        notify = log.note if isinstance(log, LabNotes) else logger.info
        self.poller = Poller(
            sqs,
            queues,
            self.pools,
            s3=s3,
            receivers=receivers,
            poll_wait_seconds=poll_wait_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
            reachability=reachability,
            on_outcome=on_outcome,
            catch_up=CatchUp(max_event_age_seconds, notify),
        )
        self.heartbeat = (
            LabHeartbeat(s3, queues.payload_bucket, self.pools)
            if s3 is not None and queues.payload_bucket
            else None
        )
        self.watcher = CodeWatcher(self.pools.values(), notify) if reload else None

    def start(self) -> Lab:
        if self.watcher is not None:
            self.watcher.start()
        self.poller.start()
        if self.heartbeat is not None:
            self.heartbeat.start()
        return self

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop receiving, let running invocations finish, then stop environments."""
        # Proxies stop sending work the moment they learn the lab is going.
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.poller.stop(grace_seconds)
        self.abort()

    def abort(self) -> None:
        """Stop every execution environment at once, running or idle."""
        for pool in self.pools.values():
            pool.close()
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
