"""A smoke run of the benchmarks: every figure is measured and summarised.

The figures themselves are checked by `make bench` on a quiet machine, never
here: timings in a test suite only measure how busy the machine is.
"""

from __future__ import annotations

import math

import pytest

from bench.__main__ import measure
from bench.stats import Figure


@pytest.fixture(scope="module")
def figures() -> list[Figure]:
    """One smoke run for every test here: it takes a minute."""
    return measure(scale=0.02)


def test_every_benchmark_figure_is_measured_with_its_baseline(figures):
    names = [figure.name for figure in figures]
    assert {"warm dispatch", "cold start", "round trip"} <= set(names)
    assert [name for name in names if name.startswith("throughput")] == [
        "throughput at 1 concurrent",
        "throughput at 8 concurrent",
        "throughput at 32 concurrent",
    ]
    assert {"reload", "large payloads (5 MB each way)"} <= set(names)
    assert [name for name in names if name.endswith("memory")] == [
        "lab (poller) memory",
        "idle warm Python environment memory",
    ]
    for figure in figures:
        assert figure.measured.samples >= 1
        assert math.isfinite(figure.measured.median) and figure.measured.median > 0
        # Every time is given against a baseline of the same run.
        assert (figure.baseline is not None) == (figure.unit != "MB")


def test_the_round_trip_says_where_its_cpu_went(figures):
    notes = next(figure.notes for figure in figures if figure.name == "round trip")

    # Linux's /proc names the endpoint and both execution environments.
    assert any(
        "endpoint (moto)" in note and "lambda_proxy.handler.handler" in note
        for note in notes
    ), notes
