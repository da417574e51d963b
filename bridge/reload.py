"""Hot reload: after a change to a function's code, its next invocation starts afresh.

One thread watches the code directory and the layers of every function the
lab serves, through watchfiles (the operating system's file notifications).
When files change, each function they belong to retires its warm execution
environments (`Pool.retire`): its next invocation starts a new one, which runs
init again as after a deployment, while invocations already running finish on
the code they started with. Without a change, warm environments are kept.

A change to a module the handler imports (`from helper import value`) counts
like a change to the handler's own module: a new environment imports
everything afresh. The lab says in one line that it noticed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from bridge.environments.pool import Pool

logger = logging.getLogger(__name__)

# Changes that arrive within this many milliseconds of each other make one
# reload: an editor's save, a formatter's rewrite, `git checkout`.
GROUPING_MS = 50

Notify = Callable[[str], None]


class CodeFilter(DefaultFilter):
    """The changes that matter to a function's code.

    Version-control data, bytecode caches, editors' backup and swap files and
    virtual environments do not count; installed packages do (layers keep
    theirs under node_modules and site-packages).
    """

    ignore_dirs = tuple(
        name for name in DefaultFilter.ignore_dirs if name != "node_modules"
    )


class CodeWatcher:
    """Retires the warm environments of each function whose code changes."""

    def __init__(self, pools: Iterable[Pool], notify: Notify) -> None:
        self._roots = _roots(pools)
        self._notify = notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching in a thread of its own."""
        if self._thread is not None or not self._roots:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name="mless-reload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once the thread has ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        paths = sorted({root for root, _ in self._roots})
        try:
            for changes in watch(
                *paths,
                watch_filter=CodeFilter(),
                step=GROUPING_MS,
                stop_event=self._stop,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                self.apply(changes)
        except Exception as exc:  # the lab keeps serving, without hot reload
            logger.warning(
                "Hot reload stopped: watching %s failed (%s). Restart the lab "
                "to run changed code.",
                ", ".join(str(path) for path in paths),
                exc,
            )

    def apply(self, changes: set[tuple[Change, str]]) -> None:
        """Retire the functions the changed files belong to, and say so once."""
        touched: dict[str, Pool] = {}
        files: list[str] = []
        for change, name in sorted(changes, key=lambda item: item[1]):
            path = Path(name)
            owners = [pool for root, pool in self._roots if path.is_relative_to(root)]
            if not owners:
                continue
            files.append(_shown(path, self._roots))
            if change is not Change.deleted and path.suffix == ".py":
                forget_bytecode(path)
            touched.update((pool.settings.name, pool) for pool in owners)
        for pool in touched.values():
            pool.retire()
        if touched:
            self._notify(_reload_line(files, sorted(touched)))


def forget_bytecode(source: Path) -> None:
    """Remove the cached bytecode of a changed module.

    Python trusts a .pyc whose recorded source size and modification time
    (in whole seconds) match, so an edit that keeps the size within the same
    second as the one compiled before would otherwise run the old code.
    """
    cache = source.parent / "__pycache__"
    for compiled in cache.glob(f"{source.stem}.*.pyc"):
        compiled.unlink(missing_ok=True)


def _roots(pools: Iterable[Pool]) -> list[tuple[Path, Pool]]:
    """Each directory to watch with the pool it belongs to: code, then layers."""
    roots = []
    for pool in pools:
        for directory in (pool.settings.code_dir, *pool.settings.layers):
            if directory.is_dir():
                roots.append((directory.resolve(), pool))
    return roots


def _shown(path: Path, roots: list[tuple[Path, Pool]]) -> str:
    """The path as short as its root allows: app.py rather than /home/.../app.py."""
    for root, _ in roots:
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _reload_line(files: list[str], functions: list[str]) -> str:
    changed = files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more"
    names = ", ".join(functions)
    return (
        f"{changed} changed: {names} will run the new code in a new execution "
        "environment from the next invocation."
    )
