"""The warm execution environments of one function, reused as Lambda reuses them.

An invocation takes an idle environment whose configuration matches, or
starts a new one (a cold start, which runs init). One invocation at a time per
environment; overlapping invocations get environments of their own, up to the
function's concurrency limit. An environment that timed out or crashed is
never reused. `retire` makes every later invocation start fresh, as after a
deployment, while running invocations finish where they are.

What starts an environment comes from interpreters.py (which Python, and
what the lab lends it) and debuggers.py (the debugger it runs under).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from bridge.clock import now_ms
from bridge.environments import debuggers, interpreters
from bridge.environments.process import ExecutionEnvironment, Invocation, Outcome
from bridge.environments.variables import Platform, lambda_environment
from bridge.function_settings import FunctionSettings
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
        self,
        settings: FunctionSettings,
        log: InvocationLog,
        platform: Platform,
    ) -> None:
        self.settings = settings
        self._log = log
        self._platform = platform
        self._slots = threading.BoundedSemaphore(_concurrency(settings))
        self._lock = threading.Lock()
        self._idle: list[_Warm] = []
        self._busy: list[_Warm] = []
        self._generation = 0
        for warning in debuggers.check_debugger(settings):
            logger.warning("%s", warning)
        self._interpreter = _interpreter_for(settings)
        self._warned_api_gateway = False

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
        debugger = self.settings.debugger
        if cold and debugger is not None:
            self._log.line(
                self.settings.name,
                invocation.request_id,
                debuggers.announcement(debugger, init_deadline_ms),
            )
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
        debugger = settings.debugger
        if debugger is not None and not settings.is_python:
            environment.update(debuggers.node_variables(debugger, environment))
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
        if self._interpreter is None:
            return ["node", str(NODE_WORKER), *layers]
        interpreter = self._interpreter
        lent = (
            [interpreters.lab_packages("boto3")] if interpreter.takes_lab_boto3 else []
        )
        prelude: list[str] = []
        if settings.debugger is not None:
            prelude = debuggers.python_prelude(settings.debugger)
            lent.append(debuggers.lent_debugger(settings.debugger, interpreter))
        return interpreters.python_command(
            interpreter,
            PYTHON_WORKER,
            layers,
            lent=[directory for directory in lent if directory is not None],
            prelude=prelude,
        )

    def warn_api_gateway(self, event: Any, timeout_ms: int) -> None:
        """Say once that API Gateway's caller may give up before the function does.

        The lab calls this with the event it has parsed already: looking for
        API Gateway's mark in the event's text took 7 ms for a 5 MB event.
        """
        if self._warned_api_gateway:
            return
        warning = debuggers.api_gateway_warning(
            self.settings.name,
            event,
            timeout_ms,
            debugged=self.settings.debugger is not None,
        )
        if warning is not None:
            self._warned_api_gateway = True
            logger.warning("%s", warning)


def _interpreter_for(settings: FunctionSettings) -> interpreters.Interpreter | None:
    """The Python that runs the function (None for Node.js), said once if it is off."""
    if not settings.is_python:
        return None
    choice = interpreters.choose_interpreter(
        settings.name, settings.runtime, settings.interpreter
    )
    for warning in choice.warnings:
        logger.warning("%s", warning)
    return choice.interpreter


def _concurrency(settings: FunctionSettings) -> int:
    """How many environments may run at once: one while a debugger holds a port."""
    debugger = settings.debugger
    if debugger is not None and debuggers.listens(debugger):
        return 1
    return settings.concurrency


def _fingerprint(function: wire.FunctionIdentity, variables: Mapping[str, str]) -> str:
    # Lambda starts new environments when a function's configuration changes;
    # the log stream differs per proxy environment and is not configuration.
    identity = {key: value for key, value in function.items() if key != "log_stream"}
    text = json.dumps([identity, sorted(variables.items())], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _close(warm: _Warm) -> None:
    warm.environment.close()
    shutil.rmtree(warm.scratch_dir, ignore_errors=True)
