"""Reuse: a warm environment keeps its state; overlapping invocations get their own."""

from __future__ import annotations

import itertools
import tempfile
from concurrent.futures import ThreadPoolExecutor


def test_init_runs_once_and_globals_persist_in_a_warm_environment(deploy, invoke):
    name = deploy("probe.counters")

    seen = [invoke(name, "s3-object-created.json").body for _ in range(3)]

    assert [each["inits"] for each in seen] == [1, 1, 1]
    assert [each["invocations"] for each in seen] == [1, 2, 3]
    assert len({each["pid"] for each in seen}) == 1


def test_tmp_persists_across_invocations_in_one_environment(deploy, invoke, lab_log):
    name = deploy("probe.scratch")

    first = invoke(name).body
    second = invoke(name).body

    assert first["found"] is None
    assert second["found"] == lab_log.request_ids[0]
    assert second["dir"] == first["dir"]
    # Each environment has a scratch directory of its own, not the lab's /tmp.
    assert first["dir"] != tempfile.gettempdir()


def test_an_environment_runs_one_invocation_at_a_time(deploy, invoke):
    name = deploy("probe.busy", concurrency=1, timeout_seconds=10)

    with ThreadPoolExecutor(3) as callers:
        seen = list(callers.map(lambda _: invoke(name, {"sleep": 0.3}).body, range(3)))

    assert len({each["pid"] for each in seen}) == 1
    spans = sorted((each["started"], each["ended"]) for each in seen)
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert ended <= started


def test_overlapping_invocations_run_in_separate_environments_up_to_the_limit(
    deploy, invoke
):
    name = deploy("probe.busy", concurrency=2, timeout_seconds=10)

    with ThreadPoolExecutor(4) as callers:
        seen = list(callers.map(lambda _: invoke(name, {"sleep": 0.8}).body, range(4)))

    assert len({each["pid"] for each in seen}) == 2
