"""The record of recent requests: a request delivered twice runs once."""

from __future__ import annotations

from bridge.deliveries import Deliveries, SentReply, Verdict
from lambda_proxy import wire


def a_message(n: int) -> dict[str, str]:
    return {"MessageId": f"m{n}", "ReceiptHandle": f"h{n}"}


def a_reply(size: int = 10) -> wire.Reply:
    return {
        "v": 1,
        "kind": "reply",
        "correlation_id": "c",
        "request_id": "r",
        "payload": "x" * size,
    }


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        return self.now_ms


def test_the_first_delivery_runs():
    assert Deliveries().arrive("c1", a_message(1)).verdict is Verdict.RUN


def test_a_copy_that_arrives_while_the_first_runs_is_held_and_returned_at_the_end():
    deliveries = Deliveries()
    deliveries.arrive("c1", a_message(1))

    assert deliveries.arrive("c1", a_message(2)).verdict is Verdict.HOLD
    assert deliveries.finish("c1", None) == [a_message(2)]


def test_a_later_copy_gets_the_reply_again_while_its_caller_waits():
    clock = Clock()
    deliveries = Deliveries(clock=clock)
    deliveries.arrive("c1", a_message(1))
    sent = SentReply("https://queue", a_reply(), caller_waits_until_ms=2_000)
    deliveries.finish("c1", sent)

    decision = deliveries.arrive("c1", a_message(2))

    assert decision.verdict is Verdict.RESEND
    assert decision.sent == sent


def test_a_later_copy_is_dropped_once_nobody_waits():
    clock = Clock()
    deliveries = Deliveries(clock=clock)
    deliveries.arrive("c1", a_message(1))
    deliveries.finish("c1", SentReply("q", a_reply(), caller_waits_until_ms=2_000))
    clock.now_ms = 2_000

    assert deliveries.arrive("c1", a_message(2)).verdict is Verdict.DROP


def test_a_copy_of_a_request_without_a_reply_is_dropped():
    deliveries = Deliveries()
    deliveries.arrive("c1", a_message(1))
    deliveries.finish("c1", None)

    assert deliveries.arrive("c1", a_message(2)).verdict is Verdict.DROP


def test_an_abandoned_request_runs_at_its_next_delivery():
    deliveries = Deliveries()
    deliveries.arrive("c1", a_message(1))
    deliveries.arrive("c1", a_message(2))

    assert deliveries.abandon("c1") == [a_message(2)]
    assert deliveries.arrive("c1", a_message(3)).verdict is Verdict.RUN


def test_the_oldest_finished_requests_are_forgotten_but_never_a_running_one():
    deliveries = Deliveries(capacity=2)
    deliveries.arrive("running", a_message(0))
    for n in range(1, 5):
        deliveries.arrive(f"c{n}", a_message(n))
        deliveries.finish(f"c{n}", None)

    assert len(deliveries) == 2
    assert deliveries.arrive("running", a_message(9)).verdict is Verdict.HOLD
    assert deliveries.arrive("c4", a_message(9)).verdict is Verdict.DROP
    assert deliveries.arrive("c1", a_message(9)).verdict is Verdict.RUN


def test_replies_beyond_the_byte_budget_are_forgotten_oldest_first():
    clock = Clock()
    deliveries = Deliveries(reply_bytes=3_000, clock=clock)
    for n in range(3):
        deliveries.arrive(f"c{n}", a_message(n))
        sent = SentReply("q", a_reply(size=1_000), caller_waits_until_ms=9_000)
        deliveries.finish(f"c{n}", sent)

    assert deliveries.arrive("c0", a_message(7)).verdict is Verdict.DROP
    assert deliveries.arrive("c2", a_message(8)).verdict is Verdict.RESEND
