"""The lab's main loop: receive, validate, run, reply, delete.

Stages of one request message and what each guarantees:

1. receive: several receivers long-poll the request queue, taking no more
   messages than there are free workers;
2. validate: a message that is not a valid envelope, or whose reply queue is
   not one of the stack's, is never executed; it is logged once and moved to
   the dead-letter queue;
3. run: the request runs in a warm execution environment of its function,
   with its deadline moved into the lab's clock; a request whose deadline has
   passed is skipped, since no caller waits for it any more;
4. reply: the outcome goes to the proxy's reply queue; an ack goes first when
   the handler runs long enough for the proxy to wonder where the lab is;
5. delete: the request message is deleted only after its reply is sent, or
   after it was deliberately skipped.

An error while handling one message is logged and leaves the message to
return to the queue; the poller itself keeps going.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from bridge.clock import ClockOffset, now_ms
from bridge.environments.pool import Pool
from bridge.environments.process import Invocation, Outcome
from bridge.environments.variables import credential_variables
from bridge.errors import BadMessageError
from lambda_proxy import wire

logger = logging.getLogger(__name__)

POLL_WAIT_SECONDS = 20

# The proxy gives up on a silent lab shortly before its deadline; a handler
# still running after this long has its ack sent so the proxy waits on.
ACK_AFTER_SECONDS = 0.2

# Pause after a failed receive, so a lab that lost AWS does not spin.
RECEIVE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Queues:
    """Where requests come from and where replies may go."""

    request_queue_url: str
    dead_letter_queue_url: str | None
    reply_queue_prefix: str

    def is_reply_queue(self, queue_url: str) -> bool:
        """Whether a queue is one of the stack's reply queues.

        SQS names a queue by account and name; the host part of a URL varies
        (regional, legacy and custom endpoints all reach the same queue).
        """
        account, name = _account_and_name(queue_url)
        own_account, _ = _account_and_name(self.request_queue_url)
        return account == own_account and name.startswith(self.reply_queue_prefix)


def _account_and_name(queue_url: str) -> tuple[str, str]:
    parts = urlsplit(queue_url).path.strip("/").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


OutcomeListener = Callable[[wire.Request, Outcome], None]


class Poller:
    """Serves a request queue with the given functions' pools until stopped."""

    def __init__(
        self,
        sqs: Any,
        queues: Queues,
        pools: Mapping[str, Pool],
        *,
        receivers: int = 4,
        max_in_flight: int = 64,
        poll_wait_seconds: int = POLL_WAIT_SECONDS,
        on_outcome: OutcomeListener | None = None,
    ) -> None:
        self._sqs = sqs
        self._poll_wait_seconds = poll_wait_seconds
        self._queues = queues
        self._pools = pools
        self._receivers = receivers
        self._free = threading.Semaphore(max_in_flight)
        self._workers = ThreadPoolExecutor(max_in_flight, thread_name_prefix="mless")
        self._stopping = threading.Event()
        self._clock = ClockOffset()
        self._on_outcome = on_outcome
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the receivers in the background."""
        for index in range(self._receivers):
            thread = threading.Thread(
                target=self._receive_loop, name=f"mless-receiver-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop receiving and let running invocations finish, up to a grace period."""
        self._stopping.set()
        deadline = time.monotonic() + grace_seconds
        finished = threading.Thread(target=self._workers.shutdown, daemon=True)
        finished.start()
        finished.join(max(0.0, deadline - time.monotonic()))

    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._receive_batch()
            except (BotoCoreError, ClientError) as exc:
                logger.warning("Receiving from the request queue failed: %s", exc)
                time.sleep(RECEIVE_RETRY_SECONDS)
            except Exception:
                logger.exception("Unexpected error in the receiver; it goes on")
                time.sleep(RECEIVE_RETRY_SECONDS)

    def _receive_batch(self) -> None:
        wanted = self._take_free_workers(10)
        try:
            response = self._sqs.receive_message(
                QueueUrl=self._queues.request_queue_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=self._poll_wait_seconds,
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "ApproximateFirstReceiveTimestamp",
                ],
            )
        except BaseException:
            self._give_back(wanted)
            raise
        received_at = now_ms()
        messages = response.get("Messages", [])
        self._give_back(wanted - len(messages))
        for message in messages:
            self._clock.observe(message.get("Attributes", {}), received_at)
            if self._stopping.is_set():
                self._release(message)
                self._give_back(1)
            else:
                self._workers.submit(self._handle_and_free, message)

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
            self._handle(message)
        except Exception:
            logger.exception(
                "Handling message %s failed; it returns to the queue",
                message.get("MessageId"),
            )
        finally:
            self._give_back(1)

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            request = self._validate(message)
        except BadMessageError as exc:
            self._quarantine(message, str(exc))
            return
        deadline_ms = self._clock.to_lab(request["deadline_ms"])
        if request["mode"] == "sync" and deadline_ms <= now_ms():
            logger.warning(
                "Skipped request %s of %s: its deadline passed while it waited",
                request["request_id"],
                request["function"]["name"],
            )
            self._delete(message)
            return
        outcome = self._run(request, deadline_ms)
        if self._on_outcome is not None:
            self._on_outcome(request, outcome)
        if request["reply_to"]:
            self._send(request["reply_to"], _reply(request, outcome), request)
        self._delete(message)

    def _validate(self, message: dict[str, Any]) -> wire.Request:
        try:
            envelope = wire.decode(message["Body"])
        except wire.EnvelopeError as exc:
            raise BadMessageError(str(exc)) from exc
        if envelope["kind"] != "request":
            raise BadMessageError(f"a {envelope['kind']} on the request queue")
        reply_to = envelope["reply_to"]
        if reply_to is not None and not self._queues.is_reply_queue(reply_to):
            raise BadMessageError(
                f"its reply queue {reply_to} is not one of this stack's "
                f"({self._queues.reply_queue_prefix}*)"
            )
        return envelope

    def _run(self, request: wire.Request, deadline_ms: int) -> Outcome:
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
        ack = threading.Timer(ACK_AFTER_SECONDS, self._send_ack, args=(request,))
        ack.daemon = True
        ack.start()
        try:
            return pool.invoke(
                function,
                request["environment"],
                request["credentials"],
                _invocation(request, deadline_ms),
            )
        finally:
            ack.cancel()

    def _send_ack(self, request: wire.Request) -> None:
        if request["reply_to"]:
            self._send(request["reply_to"], wire.ack_for(request), request)

    def _send(
        self, queue_url: str, envelope: wire.Envelope, request: wire.Request
    ) -> None:
        try:
            body = wire.encode(envelope)
        except wire.EnvelopeTooLargeError as exc:
            body = wire.encode(_too_large(request, exc))
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    def _delete(self, message: dict[str, Any]) -> None:
        self._sqs.delete_message(
            QueueUrl=self._queues.request_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
        )

    def _release(self, message: dict[str, Any]) -> None:
        """Make a message received during shutdown visible again at once."""
        self._sqs.change_message_visibility(
            QueueUrl=self._queues.request_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )

    def _quarantine(self, message: dict[str, Any], why: str) -> None:
        logger.error(
            "Message %s is not a request the lab can run (%s); it goes to the "
            "dead-letter queue",
            message.get("MessageId"),
            why,
        )
        if self._queues.dead_letter_queue_url:
            self._sqs.send_message(
                QueueUrl=self._queues.dead_letter_queue_url,
                MessageBody=message["Body"],
            )
        self._delete(message)


def _invocation(request: wire.Request, deadline_ms: int) -> Invocation:
    function = request["function"]
    return Invocation(
        request_id=request["request_id"],
        invoked_function_arn=function["invoked_arn"],
        deadline_ms=deadline_ms,
        timeout_ms=function["timeout_ms"],
        event_json=json.dumps(request["event"], ensure_ascii=False),
        client_context_json=_json_or_none(request.get("client_context")),
        identity_json=_json_or_none(request.get("identity")),
        trace_id=request.get("trace_id"),
        tenant_id=request.get("tenant_id"),
        # Role credentials rotate; each invocation brings the current ones.
        environment=credential_variables(request["credentials"]),
    )


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _reply(request: wire.Request, outcome: Outcome) -> wire.Reply:
    if outcome.payload is not None:
        return wire.reply_for(request, payload=outcome.payload)
    if outcome.payload_base64 is not None:
        return wire.reply_for(request, payload_base64=outcome.payload_base64)
    return wire.reply_for(request, error=outcome.error or {})


def _too_large(request: wire.Request, exc: wire.EnvelopeTooLargeError) -> wire.Reply:
    return wire.reply_for(
        request,
        error={
            "errorType": "Mless.PayloadTooLarge",
            "errorMessage": f"The response of request {request['request_id']} "
            f"could not be carried back: {exc}",
        },
    )
