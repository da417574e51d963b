"""A load through the whole bridge: nothing lost, nothing misrouted, nothing run twice.

The suite's size of `python -m bench.load`, which runs 1,000 invocations at
32 concurrent and writes its figures to docs/reliability.md.
"""

from __future__ import annotations

from bench.load import report, run_load

INVOCATIONS = 200
CONCURRENCY = 16


def test_200_invocations_at_16_concurrent_are_each_answered_once_and_rightly(
    local_cloud, tmp_path
):
    figures = run_load(local_cloud, INVOCATIONS, CONCURRENCY, tmp_path)

    print(report(figures))
    assert figures.errors == {}
    assert figures.lost == 0
    assert figures.misrouted == 0
    assert figures.double_executed == 0
    assert figures.poller.received >= INVOCATIONS
