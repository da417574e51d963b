"""Figure 5: from a saved change to the next invocation running the new code."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from watchfiles import Change

from bench.figures import SilentLog, invoke_pool
from bench.stats import Figure, Summary
from bridge.environments.pool import Pool
from bridge.environments.variables import Platform
from bridge.function_settings import FunctionSettings
from bridge.reload import CodeWatcher

SOURCE = "VERSION = {n}\n\ndef handler(event, context):\n    return VERSION\n"


def reload_time(rounds: int) -> Figure:
    """Time after the watcher notices a save until an invocation returns new code.

    Noticed means reported by the file watcher, before the lab retires the
    function's environments. The notes give the time from the save itself.
    """
    code_dir = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    (code_dir / "app.py").write_text(SOURCE.format(n=0))
    pool = Pool(
        FunctionSettings("bench-reload", "app.handler", code_dir),
        SilentLog(),
        Platform(),
    )
    noticed = threading.Event()
    noticed_at: list[float] = []
    watcher = CodeWatcher([pool], lambda line: noticed.set())
    apply = watcher.apply

    def apply_noted(changes: set[tuple[Change, str]]) -> None:
        # The save is noticed when the file watcher reports it; retiring the
        # old environments is part of the reload.
        noticed_at.append(time.perf_counter())
        apply(changes)

    watcher.apply = apply_noted  # type: ignore[method-assign]
    watcher.start()
    after_notice: list[float] = []
    save_to_notice: list[float] = []
    save_to_result: list[float] = []
    warm: list[float] = []
    try:
        time.sleep(0.5)  # the watcher is up before the first save
        invoke_pool(pool, "cold")  # the warm baseline starts warm
        for n in range(1, rounds + 1):
            started = time.perf_counter()
            invoke_pool(pool, f"warm-{n}")
            warm.append((time.perf_counter() - started) * 1000)
            noticed.clear()
            noticed_at.clear()
            saved = time.perf_counter()
            (code_dir / "app.py").write_text(SOURCE.format(n=n))
            if not noticed.wait(5):
                raise RuntimeError("the watcher never noticed the save")
            seen = noticed_at[0]
            outcome = invoke_pool(pool, f"new-{n}")
            done = time.perf_counter()
            if outcome.payload != str(n):
                raise RuntimeError(f"ran old code: {outcome.payload} != {n}")
            save_to_notice.append((seen - saved) * 1000)
            after_notice.append((done - seen) * 1000)
            save_to_result.append((done - saved) * 1000)
    finally:
        watcher.stop()
        pool.close()
    measured = Summary.of(after_notice)
    notice, whole = Summary.of(save_to_notice), Summary.of(save_to_result)
    return Figure(
        "reload",
        "ms",
        measured,
        Summary.of(warm),
        "a warm invocation of the same handler",
        "at most 100 ms after the save is noticed",
        measured.median <= 100,
        [
            f"the file watcher noticed each save after {notice.median:.0f} ms "
            f"(median); from the save itself to the result, {whole.median:.0f} ms"
        ],
    )
