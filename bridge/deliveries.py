"""The lab's record of recent requests, so that a request delivered twice runs once.

SQS delivers at least once: a request may arrive a second time while it runs
(another copy of its message) or after it ran (its delete failed or was
lost). Its correlation id, unique to one send by the proxy, says it is the
same request. For each delivery the record gives a verdict:

- RUN: first seen; run it.
- HOLD: the same request is running; this copy stays hidden and is deleted
  together with the first once that one is done.
- RESEND: it ran and its caller may still wait: send the first reply again
  (the proxy takes the first reply that reaches it and discards the others).
- DROP: it ran (or was skipped) and nobody waits for it: delete the copy.

The record lives in memory: it keeps the last RECENT_REQUESTS requests, and
the replies of those whose callers may still wait, up to
REMEMBERED_REPLY_BYTES in all. A lab that restarts starts with an empty one
(docs/reliability.md says what that means for a request that was running).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bridge.clock import now_ms
from lambda_proxy import wire

RECENT_REQUESTS = 10_000
REMEMBERED_REPLY_BYTES = 64 * 1024 * 1024

Message = dict[str, Any]


class Verdict(Enum):
    """What to do with one delivery of a request."""

    RUN = "run"
    HOLD = "hold"
    RESEND = "resend"
    DROP = "drop"


@dataclass(frozen=True)
class SentReply:
    """A reply the lab sent, and until when (lab clock, epoch ms) its caller waits."""

    queue_url: str
    reply: wire.Reply
    caller_waits_until_ms: int


@dataclass(frozen=True)
class Decision:
    """A verdict, with the reply to send again for RESEND."""

    verdict: Verdict
    sent: SentReply | None = None


@dataclass
class _Entry:
    running: bool = True
    held: list[Message] = field(default_factory=list)
    sent: SentReply | None = None
    sent_bytes: int = 0


class Deliveries:
    """Recent requests by correlation id: running, or done with their reply."""

    def __init__(
        self,
        capacity: int = RECENT_REQUESTS,
        reply_bytes: int = REMEMBERED_REPLY_BYTES,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._capacity = capacity
        self._reply_bytes_limit = reply_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._reply_bytes = 0
        self._lock = threading.Lock()

    def arrive(self, correlation_id: str, message: Message) -> Decision:
        """Judge one delivery; RUN means the caller must `finish` or `abandon` it."""
        with self._lock:
            entry = self._entries.get(correlation_id)
            if entry is None:
                self._entries[correlation_id] = _Entry()
                self._evict()
                return Decision(Verdict.RUN)
            if entry.running:
                entry.held.append(message)
                return Decision(Verdict.HOLD)
            sent = entry.sent
            if sent is not None and self._clock() < sent.caller_waits_until_ms:
                return Decision(Verdict.RESEND, sent)
            return Decision(Verdict.DROP)

    def finish(self, correlation_id: str, sent: SentReply | None) -> list[Message]:
        """Record a request as done, with its reply if one was sent.

        Returns the copies of it held while it ran, for the caller to delete.
        """
        with self._lock:
            entry = self._entries.get(correlation_id)
            if entry is None:
                entry = self._entries[correlation_id] = _Entry()
            held, entry.held = entry.held, []
            entry.running = False
            if sent is not None:
                entry.sent, entry.sent_bytes = sent, _size(sent.reply)
                self._reply_bytes += entry.sent_bytes
                self._forget_replies()
            self._evict()
            return held

    def abandon(self, correlation_id: str) -> list[Message]:
        """Forget a request that did not run to the end; return its held copies.

        The next delivery of it runs it. A request already finished stays
        recorded.
        """
        with self._lock:
            entry = self._entries.get(correlation_id)
            if entry is None or not entry.running:
                return []
            del self._entries[correlation_id]
            return entry.held

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _evict(self) -> None:
        """Forget the oldest finished requests beyond the capacity."""
        excess = len(self._entries) - self._capacity
        if excess <= 0:
            return
        for correlation_id in list(self._entries):
            if excess <= 0:
                break
            entry = self._entries[correlation_id]
            if entry.running:
                continue  # a running request is never forgotten
            del self._entries[correlation_id]
            self._reply_bytes -= entry.sent_bytes
            excess -= 1

    def _forget_replies(self) -> None:
        """Keep remembered replies within the byte budget, oldest unawaited first.

        Their requests stay recorded: a later copy is dropped, not run.
        """
        now = self._clock()
        for only_unawaited in (True, False):
            for entry in self._entries.values():
                if self._reply_bytes <= self._reply_bytes_limit:
                    return
                if entry.sent is None:
                    continue
                if only_unawaited and entry.sent.caller_waits_until_ms > now:
                    continue
                self._reply_bytes -= entry.sent_bytes
                entry.sent, entry.sent_bytes = None, 0


def _size(reply: wire.Reply) -> int:
    return len(reply.get("payload", "")) + len(reply.get("payload_base64", "")) + 512
