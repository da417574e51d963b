"""Figures: samples summarised as median, p99 and count, with a same-run baseline."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Median, 99th percentile and number of samples of one measurement."""

    median: float
    p99: float
    samples: int

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        ordered = sorted(values)
        index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
        return cls(statistics.median(ordered), ordered[index], len(ordered))


@dataclass(frozen=True)
class Figure:
    """One benchmark figure: what was measured against what, and the target."""

    name: str
    unit: str
    measured: Summary
    baseline: Summary | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio_median(self) -> float | None:
        if self.baseline is None or not self.baseline.median:
            return None
        return self.measured.median / self.baseline.median

    @property
    def ratio_p99(self) -> float | None:
        if self.baseline is None or not self.baseline.p99:
            return None
        return self.measured.p99 / self.baseline.p99

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio_median"] = self.ratio_median
        data["ratio_p99"] = self.ratio_p99
        return data


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def timed_ms(action: Callable[[], object]) -> float:
    """Run an action once; return its wall time in milliseconds."""
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000
