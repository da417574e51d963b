"""A smoke run of the benchmarks: every figure is measured and summarised.

The figures themselves are checked by `make bench` on a quiet machine, never
here: timings in a test suite only measure how busy the machine is.
"""

from __future__ import annotations

import math

from bench.__main__ import measure


def test_every_benchmark_figure_is_measured_with_its_baseline():
    figures = measure(scale=0.02)

    names = [figure.name for figure in figures]
    assert names[:3] == ["warm dispatch", "cold start", "round trip"]
    assert [name for name in names if name.startswith("throughput")] == [
        "throughput at 1 concurrent",
        "throughput at 8 concurrent",
        "throughput at 32 concurrent",
    ]
    for figure in figures:
        assert figure.measured.samples >= 1
        assert figure.baseline is not None
        assert math.isfinite(figure.measured.median) and figure.measured.median > 0
