"""The trivial handler the benchmarks invoke: it returns its event."""

from typing import Any


def handler(event: Any, context: Any) -> Any:
    return event
