"""How the lab runs one function: its code, handler, runtime and debugger.

`FunctionSettings` is what the lab starts a function's execution environments
from; `function_catalog` works them out from mless.yaml, the template and the
function's deployed configuration.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from bridge.errors import ConfigurationError

PYTHON_RUNTIME_PREFIX = "python"
NODE_RUNTIME_PREFIX = "nodejs"


def current_python_runtime() -> str:
    """The Lambda runtime name matching the interpreter running the lab."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


class DebuggerKind(Enum):
    """The debuggers an execution environment can run under."""

    DEBUGPY = "debugpy"  # VS Code: the environment listens, the IDE attaches
    PYDEVD = "pydevd"  # PyCharm, PyDev: the environment connects to the IDE
    NODE_INSPECT = "node-inspect"  # Chrome DevTools, VS Code: node --inspect


@dataclass(frozen=True)
class DebuggerSettings:
    """Where a function's execution environments meet the developer's debugger."""

    kind: DebuggerKind
    host: str = "127.0.0.1"
    port: int = 5678
    wait: bool = True


@dataclass(frozen=True)
class FunctionSettings:
    """How the lab runs one function.

    `name` is the function's name in AWS; requests for it run `handler` from
    `code_dir`, as Lambda runs it from /var/task.
    """

    name: str
    handler: str
    code_dir: Path
    runtime: str = field(default_factory=current_python_runtime)
    interpreter: str | None = None
    layers: tuple[Path, ...] = ()
    concurrency: int = 10
    environment: tuple[tuple[str, str], ...] = ()
    debugger: DebuggerSettings | None = None

    def __post_init__(self) -> None:
        if not self.code_dir.is_dir():
            raise ConfigurationError(
                f"The code directory {self.code_dir} of function {self.name!r} "
                "does not exist."
            )
        if "." not in self.handler:
            raise ConfigurationError(
                f"The handler {self.handler!r} of function {self.name!r} is not "
                "of the form module.function (for example app.handler)."
            )
        if not self.runtime.startswith((PYTHON_RUNTIME_PREFIX, NODE_RUNTIME_PREFIX)):
            raise ConfigurationError(
                f"The runtime {self.runtime!r} of function {self.name!r} is not "
                "supported; mless runs pythonX.Y and nodejsNN.x functions."
            )
        if self.concurrency < 1:
            raise ConfigurationError(
                f"The concurrency of function {self.name!r} must be at least 1."
            )

    @property
    def is_python(self) -> bool:
        return self.runtime.startswith(PYTHON_RUNTIME_PREFIX)
