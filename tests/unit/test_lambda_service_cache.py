"""The Lambda stand-in fetches a configuration once per TTL, not once per caller."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bridge.lambda_service import _FreshValues


def test_callers_asking_at_once_share_one_fetch():
    values: _FreshValues[int] = _FreshValues(ttl_seconds=60)
    fetches: list[int] = []
    lock = threading.Lock()

    def fetch() -> int:
        time.sleep(0.05)  # long enough for every caller to arrive meanwhile
        with lock:
            fetches.append(1)
        return len(fetches)

    with ThreadPoolExecutor(16) as callers:
        got = list(callers.map(lambda _: values.get("f", fetch), range(16)))

    assert fetches == [1]
    assert got == [1] * 16


def test_a_value_is_fetched_again_once_it_expires():
    values: _FreshValues[str] = _FreshValues(ttl_seconds=0.05)
    answers = iter(["first", "second"])

    before = values.get("f", lambda: next(answers))
    cached = values.get("f", lambda: next(answers))
    time.sleep(0.06)
    after = values.get("f", lambda: next(answers))

    assert (before, cached, after) == ("first", "first", "second")


def test_each_key_has_its_own_value():
    values: _FreshValues[str] = _FreshValues(ttl_seconds=60)

    assert values.get("a", lambda: "A") == "A"
    assert values.get("b", lambda: "B") == "B"
