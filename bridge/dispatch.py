"""What becomes of one request message the poller received.

Stages, and what each guarantees:

1. validate: a message that is not a valid envelope, or whose reply queue is
   not one of the stack's, or an asynchronous request older than the maximum
   event age (`catch_up`), is never executed; it goes to the dead-letter
   queue, logged once (`dead_letters`). A request kept in the payload bucket
   is read here;
2. dedupe: a request already seen (same correlation id) never runs twice: a
   copy that arrives while it runs goes with the first; one that comes later
   gets the first reply again, or is dropped when no caller waits
   (`deliveries`);
3. run: the request waits for a free execution environment of its function,
   then runs with its deadline moved into the lab's clock; a sync request
   whose deadline has passed is skipped, since no caller waits for it; one
   nobody waits for (async, mirror) runs with a deadline from when it starts
   and shows how late it is (`catch_up`);
4. reply: the outcome goes to the proxy's reply queue (`replies`);
5. delete: the message is deleted only after its reply is sent, or after the
   request was deliberately skipped, with those that finish at about the
   same time (`deletions`); its stored body goes with it. A reply
   that cannot be sent leaves the message to come back later, when the
   record answers it.

Until then the lab keeps the message hidden (`visibility`).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bridge.catch_up import CatchUp
from bridge.clock import ClockOffset, now_ms
from bridge.dead_letters import DeadLetters
from bridge.deletions import Deletions
from bridge.deliveries import Deliveries, SentReply, Verdict
from bridge.environments.pool import Pool
from bridge.environments.process import Invocation, Outcome
from bridge.environments.variables import credential_variables
from bridge.errors import BadMessageError
from bridge.replies import ReplySender, reply_to_outcome
from bridge.retry import AwsCaller
from bridge.visibility import HeldMessages
from bridge.wakes import is_wake
from lambda_proxy import wire
from lambda_proxy.handler import LAB_ANSWER_MARGIN_MS
from lambda_proxy.payloads import PayloadStore, StoredBodyGoneError

if TYPE_CHECKING:
    from bridge.poller import Queues

logger = logging.getLogger(__name__)

# The proxy gives up on a silent lab shortly before its deadline; a handler
# still running after this long has its ack sent so the proxy waits on.
ACK_AFTER_SECONDS = 0.2
# How long a delete or an S3 call may keep retrying.
HOUSEKEEPING_SECONDS = 60.0
# How often a request waiting for a free environment checks for shutdown.
SLOT_POLL_SECONDS = 0.2

Message = dict[str, Any]
OutcomeListener = Callable[[wire.Request, Outcome], None]


class Dispatcher:
    """Takes each received message to its end: run and answered, or set aside."""

    def __init__(
        self,
        sqs: Any,
        queues: Queues,
        pools: Mapping[str, Pool],
        held: HeldMessages,
        aws: AwsCaller,
        *,
        s3: Any | None,
        clock: ClockOffset,
        stopping: threading.Event,
        on_outcome: OutcomeListener | None,
        catch_up: CatchUp | None = None,
    ) -> None:
        self._sqs = sqs
        self._queues = queues
        self._pools = pools
        self._held = held
        self._aws = aws
        self._clock = clock
        self._stopping = stopping
        self._on_outcome = on_outcome
        self._catch_up = catch_up or CatchUp()
        self._payloads = PayloadStore(
            queues.payload_bucket,
            s3,
            call=functools.partial(aws.call, within_seconds=HOUSEKEEPING_SECONDS),
        )
        self._replies = ReplySender(sqs, self._payloads, aws)
        self._deletions = Deletions(
            sqs,
            queues.request_queue_url,
            aws,
            within_seconds=HOUSEKEEPING_SECONDS,
            let_go=held.let_go,
        )
        self.dead_letters = DeadLetters(sqs, queues.dead_letter_queue_url, aws)
        self._deliveries = Deliveries()
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._running: dict[str, Message] = {}
        self._running_changed = threading.Condition(self._lock)
        self._cut_loose: set[str] = set()
        self._counts: dict[str, int] = {}

    def counts(self) -> dict[str, int]:
        """How many messages met each fate so far (see PollerStats)."""
        with self._lock:
            return {**self._counts, "dead_lettered": self.dead_letters.count}

    @property
    def running_count(self) -> int:
        """Requests started and not yet answered."""
        with self._lock:
            return len(self._running)

    def handle(self, message: Message) -> None:
        """Take one received message to its end."""
        if is_wake(message):
            # Another lab's, or an earlier one's, left over when it stopped.
            self._delete(message)
            return
        try:
            envelope = _decode_request(message)
        except BadMessageError as exc:
            self._quarantine(message, str(exc))
            return
        decision = self._deliveries.arrive(envelope["correlation_id"], message)
        if decision.verdict is Verdict.HOLD:
            self._count("held_copies")
        elif decision.verdict is Verdict.DROP:
            self._count("dropped_copies")
            logger.info(
                "Dropped another copy of request %s: it already ran",
                envelope["request_id"],
            )
            self._delete(message)
        elif decision.verdict is Verdict.RESEND and decision.sent is not None:
            self._resend(message, envelope, decision.sent)
        else:
            self._open_and_serve(message, envelope)

    def release(self, messages: list[Message]) -> None:
        """Make messages visible again at once, for this or another lab.

        Wakes among them (`wakes`) have done their work and are deleted.
        """
        for wake in [message for message in messages if is_wake(message)]:
            self._delete(wake)
        messages = [message for message in messages if not is_wake(message)]
        if messages:
            self._count("released", len(messages))
            self._held.release(messages)

    def wait_for_running(self, grace_seconds: float) -> int:
        """Wait for started requests to be answered; cut loose those that are not.

        The messages of requests cut loose are made visible again at once and
        their outcomes, when they come, are not sent. Returns how many.
        """
        give_up_at = time.monotonic() + grace_seconds
        with self._running_changed:
            while self._running and time.monotonic() < give_up_at:
                self._running_changed.wait(give_up_at - time.monotonic())
            cut_loose = list(self._running.values())
            self._cut_loose.update(m["ReceiptHandle"] for m in cut_loose)
        self.release(cut_loose)
        return len(cut_loose)

    def finish_deletes(self, timeout: float) -> bool:
        """Send the deletes still queued; whether they were sent within `timeout`."""
        return self._deletions.close(timeout)

    def _open_and_serve(self, message: Message, envelope: wire.Envelope) -> None:
        correlation_id = envelope["correlation_id"]
        try:
            try:
                request, event_json = self._open(envelope)
            except BadMessageError as exc:
                self.release(self._deliveries.abandon(correlation_id))
                self._quarantine(message, str(exc))
                return
            except StoredBodyGoneError as exc:
                self._finish(message, envelope, None)
                logger.warning(
                    "Dropped request %s: %s (an earlier copy of it ran, or the "
                    "payload bucket's lifecycle rule removed it)",
                    envelope["request_id"],
                    exc,
                )
                return
            self._serve(message, request, envelope, event_json)
        except BaseException:
            # Its copies go back now; the message itself returns after its
            # visibility timeout.
            self.release(self._deliveries.abandon(correlation_id))
            raise

    def _open(self, envelope: wire.Envelope) -> tuple[wire.Request, str | None]:
        """The request itself, read from the payload bucket when stored, checked.

        A stored request comes with its event's text as the proxy wrote it,
        which the execution environment takes as it is.
        """
        opened: wire.Envelope = envelope
        event_json = None
        if envelope["kind"] == "stored":
            try:
                opened, bulk = self._payloads.open_with_bulk(envelope)
            except wire.EnvelopeError as exc:
                raise BadMessageError(str(exc)) from exc
            if bulk.field == "event":
                event_json = bulk.text
        if opened["kind"] != "request":
            raise BadMessageError(_not_a_request(opened["kind"]))
        reply_to = opened["reply_to"]
        if reply_to is not None and not self._queues.is_reply_queue(reply_to):
            raise BadMessageError(
                f"its reply queue {reply_to[:200]} is not one of this stack's "
                f"({self._queues.reply_queue_prefix}*)"
            )
        too_old = self._catch_up.too_old(
            opened, self._clock.to_lab(opened["sent_at_ms"])
        )
        if too_old:
            raise BadMessageError(too_old)
        return opened, event_json

    def _serve(
        self,
        message: Message,
        request: wire.Request,
        envelope: wire.Envelope,
        event_json: str | None,
    ) -> None:
        deadline_ms = self._clock.to_lab(request["deadline_ms"])
        slots = self._slots_of(request["function"]["name"])
        if self._expired(request, deadline_ms) or not self._wait_for_slot(slots):
            self._not_run(message, request, envelope, deadline_ms)
            return
        with self._lock:
            self._running[message["ReceiptHandle"]] = message
        try:
            if self._expired(request, deadline_ms):
                self._not_run(message, request, envelope, deadline_ms)
            else:
                # A request nobody waits for gets its deadline when it starts.
                deadline_ms = self._catch_up.deadline_ms(
                    request, deadline_ms, self._clock.to_lab(request["sent_at_ms"])
                )
                self._run_and_reply(message, request, envelope, deadline_ms, event_json)
        finally:
            if slots is not None:
                slots.release()
            with self._running_changed:
                self._running.pop(message["ReceiptHandle"], None)
                self._running_changed.notify_all()

    def _not_run(
        self,
        message: Message,
        request: wire.Request,
        envelope: wire.Envelope,
        deadline_ms: int,
    ) -> None:
        """Skip a request nobody waits for; give back one the lab has no time for."""
        if not self._expired(request, deadline_ms):
            self.release(
                [message, *self._deliveries.abandon(envelope["correlation_id"])]
            )
            return
        logger.warning(
            "Skipped request %s of %s: its deadline passed while it waited",
            request["request_id"],
            request["function"]["name"],
        )
        self._count("skipped_expired")
        self._finish(message, envelope, None)

    def _expired(self, request: wire.Request, deadline_ms: int) -> bool:
        # A proxy that has heard nothing from the lab gives up this long
        # before its deadline; a request not started by then has no caller.
        give_up_at_ms = deadline_ms - LAB_ANSWER_MARGIN_MS
        return request["mode"] == "sync" and give_up_at_ms <= now_ms()

    def _run_and_reply(
        self,
        message: Message,
        request: wire.Request,
        envelope: wire.Envelope,
        deadline_ms: int,
        event_json: str | None,
    ) -> None:
        outcome = self._run(request, deadline_ms, event_json)
        if self._is_cut_loose(message):
            self.release(self._deliveries.abandon(envelope["correlation_id"]))
            return
        self._count("ran")
        self._tell_listener(request, outcome)
        reply_to = request["reply_to"]
        if reply_to is None:
            self._finish(message, envelope, None)
            return
        sent = SentReply(reply_to, reply_to_outcome(request, outcome), deadline_ms)
        if self._replies.send(sent.queue_url, sent.reply, deadline_ms):
            self._finish(message, envelope, sent)
            return
        # The message returns after its visibility timeout and finds the reply
        # in the record: sent again while the caller waits, else dropped.
        held = self._deliveries.finish(envelope["correlation_id"], sent)
        for copy in [message, *held]:
            self._held.let_go(copy)

    def _finish(
        self, message: Message, envelope: wire.Envelope, sent: SentReply | None
    ) -> None:
        """Record the request as done; delete its message, copies and stored body."""
        held = self._deliveries.finish(envelope["correlation_id"], sent)
        for copy in held:
            self._delete(copy)
        # The stored body goes once the message is gone: a message that comes
        # back (its delete failed, the lab died) still finds its body.
        stored = envelope if envelope["kind"] == "stored" else None
        self._delete(
            message, after=None if stored is None else lambda: self._discard(stored)
        )

    def _resend(
        self, message: Message, envelope: wire.Envelope, sent: SentReply
    ) -> None:
        """Answer another copy of a request that ran with the reply it got."""
        self._count("resent_replies")
        logger.info(
            "Sent the reply to request %s again: another copy of it arrived",
            envelope["request_id"],
        )
        if self._replies.send(sent.queue_url, sent.reply, sent.caller_waits_until_ms):
            self._delete(message)
        else:
            self._held.let_go(message)

    def _slots_of(self, function_name: str) -> threading.BoundedSemaphore | None:
        """The function's free environments, counted here so a wait can end early."""
        pool = self._pools.get(function_name)
        if pool is None:
            return None
        with self._lock:
            slots = self._slots.get(function_name)
            if slots is None:
                slots = threading.BoundedSemaphore(pool.settings.concurrency)
                self._slots[function_name] = slots
            return slots

    def _wait_for_slot(self, slots: threading.BoundedSemaphore | None) -> bool:
        """Wait for a free environment; False when the lab stops meanwhile."""
        if slots is None:
            return not self._stopping.is_set()
        while not slots.acquire(timeout=SLOT_POLL_SECONDS):
            if self._stopping.is_set():
                return False
        if self._stopping.is_set():
            slots.release()
            return False
        return True

    def _run(
        self, request: wire.Request, deadline_ms: int, event_json: str | None
    ) -> Outcome:
        function = request["function"]
        pool = self._pools.get(function["name"])
        if pool is None:
            return Outcome(
                request_id=request["request_id"],
                status="error",
                error={
                    "errorType": "Mless.FunctionNotInLab",
                    "errorMessage": f"The lab has no code for function "
                    f"{function['name']!r}; add it to the lab's configuration.",
                },
            )
        # Only the lab speaks of API Gateway's callers: the local cloud runs
        # the proxy in pools too, and would say the same thing twice.
        pool.warn_api_gateway(request["event"], function["timeout_ms"])
        ack = threading.Timer(ACK_AFTER_SECONDS, self._replies.ack, args=(request,))
        ack.daemon = True
        ack.start()
        try:
            return pool.invoke(
                function,
                request["environment"],
                request["credentials"],
                _invocation(request, deadline_ms, event_json),
            )
        finally:
            ack.cancel()

    def _tell_listener(self, request: wire.Request, outcome: Outcome) -> None:
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(request, outcome)
        except Exception:
            logger.exception(
                "Recording the outcome of request %s failed", request["request_id"]
            )

    def _delete(
        self, message: Message, after: Callable[[], None] | None = None
    ) -> None:
        self._deletions.delete(message, after)

    def _discard(self, stored: wire.Stored) -> None:
        try:
            self._payloads.discard(stored)
        except Exception as exc:
            logger.warning(
                "Left the body of request %s in the payload bucket (its lifecycle "
                "rule removes it): %s",
                stored["request_id"],
                exc,
            )

    def _quarantine(self, message: Message, why: str) -> None:
        if self.dead_letters.take(message, why):
            self._delete(message)
        else:
            self._held.let_go(message)

    def _is_cut_loose(self, message: Message) -> bool:
        with self._lock:
            return message["ReceiptHandle"] in self._cut_loose

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount


def _decode_request(message: Message) -> wire.Envelope:
    """The message's envelope, a request or a stored request, or BadMessageError."""
    try:
        envelope = wire.decode(message["Body"])
    except wire.EnvelopeError as exc:
        raise BadMessageError(str(exc)) from exc
    kind = envelope["body_of"] if envelope["kind"] == "stored" else envelope["kind"]
    if kind != "request":
        raise BadMessageError(_not_a_request(kind))
    return envelope


def _not_a_request(kind: str) -> str:
    article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
    return f"it is not a request but {article} {kind}"


def _invocation(
    request: wire.Request, deadline_ms: int, event_json: str | None
) -> Invocation:
    function = request["function"]
    if event_json is None:
        event_json = json.dumps(request["event"], ensure_ascii=False)
    return Invocation(
        request_id=request["request_id"],
        invoked_function_arn=function["invoked_arn"],
        deadline_ms=deadline_ms,
        timeout_ms=function["timeout_ms"],
        event_json=event_json,
        client_context_json=_json_or_none(request.get("client_context")),
        identity_json=_json_or_none(request.get("identity")),
        trace_id=request.get("trace_id"),
        tenant_id=request.get("tenant_id"),
        # Role credentials rotate; each invocation brings the current ones.
        environment=credential_variables(request["credentials"]),
    )


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
