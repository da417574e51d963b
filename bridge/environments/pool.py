"""The warm execution environments of one function, reused as Lambda reuses them.

An invocation takes an idle environment whose configuration matches, or
starts a new one (a cold start, which runs init). One invocation at a time per
environment; overlapping invocations get environments of their own, up to the
function's concurrency limit. An environment that timed out or crashed is
never reused. `retire` makes every later invocation start fresh, as after a
deployment, while running invocations finish where they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from bridge.clock import now_ms
from bridge.config import FunctionSettings, current_python_runtime
from bridge.environments.process import ExecutionEnvironment, Invocation, Outcome
from bridge.environments.variables import Platform, lambda_environment
from lambda_proxy import wire

logger = logging.getLogger(__name__)

# Lambda gives init ten seconds of its own, outside the invocation's timeout.
INIT_LIMIT_MS = 10_000

_HERE = Path(__file__).resolve().parent
PYTHON_WORKER = _HERE / "python_worker.py"
NODE_WORKER = _HERE / "node_worker.mjs"


class InvocationLog(Protocol):
    """Where an invocation's lines go: START, the handler's output, END/REPORT."""

    def start(self, function: str, request_id: str, version: str) -> None: ...

    def line(self, function: str, request_id: str | None, text: str) -> None: ...

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None: ...


@dataclass
class _Warm:
    environment: ExecutionEnvironment
    fingerprint: str
    generation: int
    scratch_dir: str


class Pool:
    """Execution environments of one function, kept warm between invocations."""

    def __init__(
        self, settings: FunctionSettings, log: InvocationLog, platform: Platform
    ) -> None:
        self.settings = settings
        self._log = log
        self._platform = platform
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._lock = threading.Lock()
        self._idle: list[_Warm] = []
        self._busy: list[_Warm] = []
        self._generation = 0
        self._warned_interpreter = False

    def invoke(
        self,
        function: wire.FunctionIdentity,
        variables: Mapping[str, str],
        credentials: wire.Credentials,
        invocation: Invocation,
    ) -> Outcome:
        """Run one invocation in a warm or new environment and return its outcome."""
        fingerprint = _fingerprint(function, variables)
        with self._slots:
            warm = self._take_idle(fingerprint)
            if warm is None:
                warm = self._start(function, variables, credentials, fingerprint)
            self._log.start(
                function["name"], invocation.request_id, function["version"]
            )
            try:
                outcome = self._run(warm, invocation)
            finally:
                self._release(warm)
        self._log.end(function["name"], outcome, function["memory_mb"])
        return outcome

    def _run(self, warm: _Warm, invocation: Invocation) -> Outcome:
        environment = warm.environment
        cold = environment.init_duration_ms is None
        init_deadline_ms = invocation.deadline_ms
        if invocation.deadline_after_init:
            init_deadline_ms = now_ms() + INIT_LIMIT_MS
        if cold and not environment.wait_ready(init_deadline_ms):
            return Outcome(
                request_id=invocation.request_id,
                status="error",
                error=environment.init_error,
                init_duration_ms=environment.init_duration_ms,
            )
        if invocation.deadline_after_init:
            invocation = replace(
                invocation, deadline_ms=now_ms() + invocation.timeout_ms
            )
        outcome = environment.invoke(invocation)
        if cold:
            outcome = replace(outcome, init_duration_ms=environment.init_duration_ms)
        return outcome

    def retire(self) -> None:
        """Start every later invocation in a fresh environment."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for warm in idle:
            _close(warm)

    def close(self) -> None:
        """Stop every environment, idle or busy."""
        with self._lock:
            everything = self._idle + self._busy
            self._idle, self._busy = [], []
            self._generation += 1
        for warm in everything:
            _close(warm)

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._idle) + len(self._busy)

    def _take_idle(self, fingerprint: str) -> _Warm | None:
        with self._lock:
            for index, warm in enumerate(self._idle):
                if warm.fingerprint == fingerprint:
                    del self._idle[index]
                    self._busy.append(warm)
                    return warm
        return None

    def _release(self, warm: _Warm) -> None:
        with self._lock:
            if warm in self._busy:
                self._busy.remove(warm)
            keep = warm.environment.alive and warm.generation == self._generation
            if keep:
                self._idle.append(warm)
        if not keep:
            _close(warm)

    def _start(
        self,
        function: wire.FunctionIdentity,
        variables: Mapping[str, str],
        credentials: wire.Credentials,
        fingerprint: str,
    ) -> _Warm:
        settings = self.settings
        scratch_dir = tempfile.mkdtemp(prefix=f"mless-{settings.name[:40]}-")
        environment = lambda_environment(
            function,
            {**dict(settings.environment), **variables},
            credentials,
            handler=settings.handler,
            runtime=settings.runtime,
            code_dir=str(settings.code_dir),
            platform=replace(self._platform, scratch_dir=scratch_dir),
        )
        name = settings.name
        process = ExecutionEnvironment(
            self._command(),
            environment,
            str(settings.code_dir),
            lambda request_id, text: self._log.line(name, request_id, text),
        )
        with self._lock:
            warm = _Warm(process, fingerprint, self._generation, scratch_dir)
            self._busy.append(warm)
        return warm

    def _command(self) -> list[str]:
        settings = self.settings
        layers = [str(layer) for layer in settings.layers]
        if not settings.is_python:
            return ["node", str(NODE_WORKER), *layers]
        return [self._interpreter(), str(PYTHON_WORKER), *layers]

    def _interpreter(self) -> str:
        settings = self.settings
        if settings.interpreter:
            return settings.interpreter
        if (
            settings.runtime != current_python_runtime()
            and not self._warned_interpreter
        ):
            self._warned_interpreter = True
            logger.warning(
                "Function %s declares %s; the lab runs it under %s. Name an "
                "interpreter for it in mless.yaml to choose another.",
                settings.name,
                settings.runtime,
                current_python_runtime(),
            )
        return sys.executable


def _fingerprint(function: wire.FunctionIdentity, variables: Mapping[str, str]) -> str:
    # Lambda starts new environments when a function's configuration changes;
    # the log stream differs per proxy environment and is not configuration.
    identity = {key: value for key, value in function.items() if key != "log_stream"}
    text = json.dumps([identity, sorted(variables.items())], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _close(warm: _Warm) -> None:
    warm.environment.close()
    shutil.rmtree(warm.scratch_dir, ignore_errors=True)
