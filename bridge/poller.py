"""The lab's main loop: receive request messages, hand each to the dispatcher.

Stages of one request message and what each guarantees:

1. receive: several receivers long-poll the request queue, taking no more
   messages than there are free workers; from then on the lab keeps each
   message hidden for as long as the lab holds it (`visibility`). What
   already waits when the lab starts is taken first and started oldest
   first (`catch_up`). A receiver hands its messages to worker threads, but
   handles the newest one itself while another receiver still polls: that
   saves a thread hand-off on every invocation's path;
2. validate, dedupe, run, reply, delete (`dispatch`): a message that is not a
   valid request is never run and ends in the dead-letter queue; a request
   delivered twice runs once; a message is deleted only after its reply is
   sent, or after the request was deliberately skipped.

Every AWS call is retried while it fails transiently, and the lab says once
when AWS has been out of reach for a while (`retry`). An error while
handling one message is logged and leaves the message to return to the
queue; the poller itself keeps going. `stop` stops receiving, makes the
messages not yet started visible again at once and lets running invocations
finish within a grace period, then sends the deletes still queued.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from bridge.catch_up import CatchUp, oldest_first
from bridge.clock import ClockOffset, now_ms
from bridge.dispatch import Dispatcher, OutcomeListener
from bridge.environments.pool import Pool
from bridge.retry import AwsCaller, Reachability
from bridge.visibility import HeldMessages
from bridge.wakes import is_wake, send_wakes

__all__ = ["POLL_WAIT_SECONDS", "OutcomeListener", "Poller", "PollerStats", "Queues"]

logger = logging.getLogger(__name__)

POLL_WAIT_SECONDS = 20

# Used when the request queue's own setting cannot be read: the stack's
# default proxy timeout.
DEFAULT_VISIBILITY_SECONDS = 30

# SQS's ReceiveMessage returns at most this many messages.
BATCH_SIZE = 10
# Taking what waits when the lab starts: a long poll this long returns as
# soon as a message is there, and finds messages a short poll may miss.
BACKLOG_WAIT_SECONDS = 1

# Pause after a receive failed for a reason retrying does not cure (no
# permission, no queue), so that such a lab does not spin.
RECEIVE_ERROR_PAUSE_SECONDS = 5.0

# A stopping lab wakes the long polls still out again after this long.
WAKE_AGAIN_SECONDS = 1.0

# Stopping allows the deletes still queued at least this long, even when the
# grace period is over: a message left undeleted runs again later.
LAST_DELETES_SECONDS = 5.0


@dataclass(frozen=True)
class Queues:
    """Where requests come from, where replies may go, where large bodies wait."""

    request_queue_url: str
    dead_letter_queue_url: str | None
    reply_queue_prefix: str
    payload_bucket: str | None = None

    def is_reply_queue(self, queue_url: str) -> bool:
        """Whether a queue is one of the stack's reply queues.

        A reply queue is named by its prefix and a hex id. SQS names a queue
        by account and name; the host part of a URL varies (regional, legacy
        and custom endpoints all reach the same queue).
        """
        account, name = _account_and_name(queue_url)
        own_account, _ = _account_and_name(self.request_queue_url)
        pattern = re.escape(self.reply_queue_prefix) + "[0-9a-f]{1,64}"
        return (
            bool(account)
            and account == own_account
            and re.fullmatch(pattern, name) is not None
        )


def _account_and_name(queue_url: str) -> tuple[str, str]:
    parts = urlsplit(queue_url).path.strip("/").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


@dataclass(frozen=True)
class PollerStats:
    """What the poller did with the messages it received, counted since start."""

    received: int = 0  # request messages, copies included (wakes not)
    ran: int = 0  # requests run to an outcome
    held_copies: int = 0  # copies that came while their request ran
    resent_replies: int = 0  # copies that came later and got the reply again
    dropped_copies: int = 0  # copies that came when nobody waited any more
    skipped_expired: int = 0  # sync requests whose deadline passed first
    dead_lettered: int = 0  # messages that are no request the lab may run
    released: int = 0  # messages made visible again at once (shutdown)


class Poller:
    """Serves a request queue with the given functions' pools until stopped."""

    def __init__(
        self,
        sqs: Any,
        queues: Queues,
        pools: Mapping[str, Pool],
        *,
        s3: Any | None = None,
        receivers: int = 4,
        max_in_flight: int = 64,
        poll_wait_seconds: int = POLL_WAIT_SECONDS,
        visibility_timeout_seconds: int | None = None,
        reachability: Reachability | None = None,
        on_outcome: OutcomeListener | None = None,
        catch_up: CatchUp | None = None,
    ) -> None:
        self._sqs = sqs
        self._queues = queues
        self._receivers = receivers
        self._poll_wait_seconds = poll_wait_seconds
        self._aws = AwsCaller(reachability)
        self._held = HeldMessages(sqs, queues.request_queue_url, self._aws)
        self._held.visibility_seconds = visibility_timeout_seconds
        self._clock = ClockOffset()
        self._stopping = threading.Event()
        self._dispatcher = Dispatcher(
            sqs,
            queues,
            pools,
            self._held,
            self._aws,
            s3=s3,
            clock=self._clock,
            stopping=self._stopping,
            on_outcome=on_outcome,
            catch_up=catch_up,
        )
        self._max_in_flight = max_in_flight
        self._backlog_taken = threading.Event()
        self._free = threading.Semaphore(max_in_flight)
        self._workers = ThreadPoolExecutor(max_in_flight, thread_name_prefix="mless")
        self._received = 0
        # Receivers handling a message themselves right now (`_receive_batch`).
        self._receivers_handling = 0
        # When each receive call out now ends at the latest, by thread.
        self._polls_ending: dict[int, float] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def reachability(self) -> Reachability:
        """What the lab knows of whether AWS answers."""
        return self._aws.reachability

    @property
    def started(self) -> bool:
        """Whether `start` has been called."""
        return bool(self._threads)

    @property
    def running_count(self) -> int:
        """Invocations started and not yet answered."""
        return self._dispatcher.running_count

    def stats(self) -> PollerStats:
        """The counts so far."""
        with self._lock:
            counts = {**self._dispatcher.counts(), "received": self._received}
        return PollerStats(
            **{f.name: counts.get(f.name, 0) for f in fields(PollerStats)}
        )

    def start(self) -> None:
        """Start the receivers and the visibility extender in the background (once)."""
        if self._threads:
            return
        self._held.start()
        for index in range(self._receivers):
            thread = threading.Thread(
                target=self._receive_loop,
                args=(index,),
                name=f"mless-receiver-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop receiving; let running invocations finish, up to a grace period.

        Messages received but not started are made visible again at once,
        including those the receivers' last long polls bring in: they are
        woken (`wakes`) and waited for within the grace period too.
        Invocations still running after the grace period are cut loose: their
        messages are made visible again and their outcomes are not sent.
        """
        give_up_at = time.monotonic() + grace_seconds
        self._stopping.set()
        cut_loose = self._dispatcher.wait_for_running(grace_seconds)
        if cut_loose:
            logger.warning(
                "%d invocation(s) still running after %.0f s; their requests "
                "return to the queue",
                cut_loose,
                grace_seconds,
            )
        if not self._wake_and_join(give_up_at):
            # NOTE: a message SQS hands to a poll nobody waits for any more
            # stays hidden until its visibility timeout ends.
            logger.info("Stopped before the last long polls returned")
        remaining = give_up_at - time.monotonic()
        if not self._dispatcher.finish_deletes(max(LAST_DELETES_SECONDS, remaining)):
            logger.warning(
                "Stopped before every delete was sent: answered requests not "
                "deleted return to the queue after their visibility timeout, "
                "and a lab that takes them runs them again"
            )
        self._held.stop()
        self._workers.shutdown(wait=False)

    def join(self, timeout: float) -> bool:
        """Wait for the receivers to return from their last poll after `stop`.

        Returns whether they all returned in time.
        """
        give_up_at = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, give_up_at - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _wake_and_join(self, give_up_at: float) -> bool:
        """Wait for the receivers to return, waking the long polls still out
        (`wakes`); whether they all returned before `give_up_at`."""
        while not self.join(0):
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                return False
            polls = self._polls_to_wake()
            if polls and not self._aws.reachability.unreachable:
                # On a thread of its own: AWS may be slow to answer, and the
                # grace period bounds the stop, not the call.
                threading.Thread(
                    target=send_wakes,
                    args=(self._sqs, self._queues.request_queue_url, polls, self._aws),
                    name="mless-wakes",
                    daemon=True,
                ).start()
            # A poll may take several wakes and leave another poll waiting.
            self.join(min(WAKE_AGAIN_SECONDS, remaining))
        return True

    def _polls_to_wake(self) -> int:
        """Long polls out now with more than WAKE_AGAIN_SECONDS to go.

        Shorter ones end on their own before another round of wakes, and a
        wake sent to one that ends first would be left in the queue.
        """
        now = time.monotonic()
        with self._lock:
            ends = list(self._polls_ending.values())
        return sum(ends_at - now > WAKE_AGAIN_SECONDS for ends_at in ends)

    def _receive_loop(self, index: int) -> None:
        if index == 0:
            self._take_backlog()
        self._backlog_taken.wait()
        while not self._stopping.is_set():
            try:
                self._receive_batch()
            except Exception as exc:
                if self._stopping.is_set():
                    return
                # Transient failures were retried without end; this is another
                # kind of error (AccessDenied, a deleted queue): say so, go on.
                logger.error("Receiving from the request queue failed: %s", exc)
                self._stopping.wait(RECEIVE_ERROR_PAUSE_SECONDS)

    def _take_backlog(self) -> None:
        """Start what waited in the queue before the lab came, oldest first.

        The other receivers wait until it is taken, so that nothing received
        later starts before it (`catch_up`).
        """
        taken: list[dict[str, Any]] = []
        try:
            most = min(self._waiting_count(), self._max_in_flight - BATCH_SIZE)
            while len(taken) < most and not self._stopping.is_set():
                batch = self._receive(BACKLOG_WAIT_SECONDS)
                if not batch:
                    break
                taken += batch
        except Exception as exc:
            if not self._stopping.is_set():
                logger.warning("Could not take the waiting requests first: %s", exc)
        finally:
            self._dispatch(oldest_first(taken))
            self._backlog_taken.set()

    def _waiting_count(self) -> int:
        response = self._aws.call(
            self._sqs.get_queue_attributes,
            cancel=self._stopping,
            QueueUrl=self._queues.request_queue_url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )
        return int(response["Attributes"].get("ApproximateNumberOfMessages", 0))

    def _receive_batch(self) -> None:
        messages = self._receive(self._poll_wait_seconds)
        if not messages or self._stopping.is_set() or not self._may_handle_one_here():
            self._dispatch(messages)
            return
        try:
            # The older ones are handed on first: none waits for a newer one.
            self._dispatch(messages[:-1])
            self._handle_and_free(messages[-1])
        finally:
            with self._lock:
                self._receivers_handling -= 1

    def _may_handle_one_here(self) -> bool:
        """Whether this receiver may handle a message itself: while another polls.

        Handing a message to a worker thread costs the invocation a switch
        of Python's GIL, which waits while this receiver prepares its next
        long poll: about 2 ms of a 30 ms round trip, measured on the local
        cloud (`bench`).
        """
        with self._lock:
            if self._receivers_handling >= self._receivers - 1:
                return False
            self._receivers_handling += 1
            return True

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        """Receive what the free workers can take, oldest first; hold it hidden."""
        visibility = self._visibility_seconds()
        wanted = self._take_free_workers(BATCH_SIZE)
        if self._stopping.is_set():
            # It waited for a free worker while the lab began to stop.
            self._give_back(wanted)
            return []
        poll = threading.get_ident()
        with self._lock:
            self._polls_ending[poll] = time.monotonic() + wait_seconds
        try:
            response = self._aws.call(
                self._sqs.receive_message,
                cancel=self._stopping,
                QueueUrl=self._queues.request_queue_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "ApproximateFirstReceiveTimestamp",
                    "SentTimestamp",
                ],
            )
        except BaseException:
            self._give_back(wanted)
            raise
        finally:
            with self._lock:
                del self._polls_ending[poll]
        received_at, received_at_ms = time.monotonic(), now_ms()
        messages = response.get("Messages", [])
        self._give_back(wanted - len(messages))
        with self._lock:
            self._received += sum(not is_wake(message) for message in messages)
        for message in messages:
            self._clock.observe(message.get("Attributes", {}), received_at_ms)
            self._held.hold(message, received_at)
        return oldest_first(messages)

    def _dispatch(self, messages: list[dict[str, Any]]) -> None:
        """Hand received messages to the workers in order; give them back on stop."""
        if self._stopping.is_set():
            self._dispatcher.release(messages)
            self._give_back(len(messages))
            return
        for message in messages:
            self._workers.submit(self._handle_and_free, message)

    def _visibility_seconds(self) -> int:
        """The visibility timeout the lab receives with: the queue's own, read once."""
        if self._held.visibility_seconds is None:
            self._held.visibility_seconds = self._read_visibility_seconds()
        return self._held.visibility_seconds

    def _read_visibility_seconds(self) -> int:
        try:
            response = self._aws.call(
                self._sqs.get_queue_attributes,
                cancel=self._stopping,
                QueueUrl=self._queues.request_queue_url,
                AttributeNames=["VisibilityTimeout"],
            )
            return max(1, int(response["Attributes"]["VisibilityTimeout"]))
        except Exception as exc:
            if self._stopping.is_set():
                raise
            logger.warning(
                "Could not read the request queue's visibility timeout (%s); "
                "using %d s",
                exc,
                DEFAULT_VISIBILITY_SECONDS,
            )
            return DEFAULT_VISIBILITY_SECONDS

    def _take_free_workers(self, most: int) -> int:
        self._free.acquire()
        taken = 1
        while taken < most and self._free.acquire(blocking=False):
            taken += 1
        return taken

    def _give_back(self, count: int) -> None:
        for _ in range(count):
            self._free.release()

    def _handle_and_free(self, message: dict[str, Any]) -> None:
        try:
            self._dispatcher.handle(message)
        except Exception:
            logger.exception(
                "Handling message %s failed; it returns to the queue",
                message.get("MessageId"),
            )
            self._held.let_go(message)
        finally:
            self._give_back(1)
