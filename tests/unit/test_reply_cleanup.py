"""The proxy deletes what a reply left off the caller's path, in order."""

from __future__ import annotations

import logging
import threading

import pytest

from lambda_proxy.replies import Cleanup


def test_actions_run_in_the_order_given_on_another_thread():
    cleanup = Cleanup()
    ran: list[tuple[int, str]] = []

    for number in range(5):
        cleanup.later(
            lambda number=number: ran.append((number, threading.current_thread().name))
        )

    assert cleanup.wait(timeout=5)
    assert [number for number, _ in ran] == [0, 1, 2, 3, 4]
    assert {name for _, name in ran} == {"mless-cleanup"}


def test_a_failing_action_is_logged_and_the_next_one_still_runs(caplog):
    cleanup = Cleanup()
    ran: list[str] = []

    def fail() -> None:
        raise RuntimeError("AccessDenied")

    with caplog.at_level(logging.WARNING, logger="lambda_proxy.replies"):
        cleanup.later(fail)
        cleanup.later(lambda: ran.append("after"))
        assert cleanup.wait(timeout=5)

    assert ran == ["after"]
    assert "AccessDenied" in caplog.text


def test_waiting_gives_up_while_an_action_is_still_running():
    cleanup = Cleanup()
    release = threading.Event()
    cleanup.later(release.wait)

    try:
        assert not cleanup.wait(timeout=0.1)
    finally:
        release.set()
    assert cleanup.wait(timeout=5)


@pytest.mark.parametrize("count", [0, 1])
def test_nothing_to_wait_for_returns_at_once(count):
    cleanup = Cleanup()
    for _ in range(count):
        cleanup.later(lambda: None)

    assert cleanup.wait(timeout=5)
