"""The project's mless.yaml, read and checked value by value.

The file holds the lab-side settings of a project, all optional:

    stack: mless                 the mless stack to serve
    template: template.yaml      a SAM or CloudFormation template of the functions
    template_stack: my-app       the stack deployed from that template
    reload: false                keep environments when the code changes (default true)
    functions:
      HashFunction:              a logical id in the template, or a name in AWS
        name: my-app-hash        the function's name in AWS
        proxy: true              its events go to the stack's proxy function
        code_dir: src/hash       handler: app.handler    runtime: python3.12
        interpreter: .venv/bin/python
        layers: [layers/common]
        concurrency: 2
        environment: {STAGE: dev}
        debugger: {kind: debugpy, host: 127.0.0.1, port: 5678, wait: true}

Relative paths are relative to the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml  # type: ignore[import-untyped]

from bridge.environments.variables import RESERVED_NAMES
from bridge.errors import ConfigFileError
from bridge.function_settings import DebuggerKind, DebuggerSettings

CONFIG_FILE_NAME = "mless.yaml"


@dataclass(frozen=True)
class FunctionConfig:
    """One function's entry in mless.yaml; None where the file says nothing."""

    key: str
    name: str | None = None
    proxy: bool = False
    code_dir: Path | None = None
    handler: str | None = None
    runtime: str | None = None
    interpreter: str | None = None
    layers: tuple[Path, ...] = ()
    concurrency: int | None = None
    environment: tuple[tuple[str, str], ...] = ()
    debugger: DebuggerSettings | None = None


@dataclass(frozen=True)
class ProjectConfig:
    """What mless.yaml holds; an absent file is an empty configuration."""

    path: Path | None = None
    stack: str | None = None
    template: Path | None = None
    template_stack: str | None = None
    reload: bool = True
    functions: Mapping[str, FunctionConfig] = field(default_factory=dict)


def load_project_config(path: Path | None) -> ProjectConfig:
    """Read mless.yaml; ConfigFileError names the file, the key and what was expected.

    With no path, ./mless.yaml is read if it exists.
    """
    if path is None:
        path = Path(CONFIG_FILE_NAME)
        if not path.is_file():
            return ProjectConfig()
    document = _read_yaml(path)
    reader = _Reader(path)
    if document is None:
        return ProjectConfig(path=path)
    top = reader.mapping(document, "", _TOP_KEYS)
    functions = reader.mapping(top.get("functions") or {}, "functions", None)
    return ProjectConfig(
        path=path,
        stack=reader.text(top.get("stack"), "stack"),
        template=reader.file(top.get("template"), "template"),
        template_stack=reader.text(top.get("template_stack"), "template_stack"),
        reload=reader.flag(top.get("reload"), "reload") is not False,
        functions={
            str(key): _function_config(reader, str(key), entry)
            for key, entry in functions.items()
        },
    )


_TOP_KEYS = ("stack", "template", "template_stack", "reload", "functions")
_FUNCTION_KEYS = (
    "name",
    "proxy",
    "code_dir",
    "handler",
    "runtime",
    "interpreter",
    "layers",
    "concurrency",
    "environment",
    "debugger",
)
_DEBUGGER_KEYS = ("kind", "host", "port", "wait")
_MAX_PORT = 65535


def _function_config(reader: _Reader, key: str, entry: object) -> FunctionConfig:
    where = f"functions.{key}"
    values = reader.mapping(entry or {}, where, _FUNCTION_KEYS)
    concurrency = reader.number(values.get("concurrency"), f"{where}.concurrency", 1)
    interpreter = reader.text(values.get("interpreter"), f"{where}.interpreter")
    if interpreter is not None and ("/" in interpreter or "\\" in interpreter):
        interpreter = str(reader.base / interpreter)
    return FunctionConfig(
        key=key,
        name=reader.text(values.get("name"), f"{where}.name"),
        proxy=reader.flag(values.get("proxy"), f"{where}.proxy") or False,
        code_dir=reader.directory(values.get("code_dir"), f"{where}.code_dir"),
        handler=reader.text(values.get("handler"), f"{where}.handler"),
        runtime=reader.text(values.get("runtime"), f"{where}.runtime"),
        interpreter=interpreter,
        layers=tuple(
            reader.directory(layer, f"{where}.layers[{index}]") or Path()
            for index, layer in enumerate(
                reader.sequence(values.get("layers"), f"{where}.layers")
            )
        ),
        concurrency=concurrency,
        environment=tuple(
            reader.variables(values.get("environment"), f"{where}.environment")
        ),
        debugger=_debugger(reader, values.get("debugger"), f"{where}.debugger"),
    )


def _debugger(reader: _Reader, value: object, where: str) -> DebuggerSettings | None:
    if value is None:
        return None
    values = reader.mapping(value, where, _DEBUGGER_KEYS)
    kinds = [kind.value for kind in DebuggerKind]
    kind = reader.text(values.get("kind"), f"{where}.kind")
    if kind not in kinds:
        raise ConfigFileError(
            reader.path,
            f"{where}.kind",
            f"expected one of {', '.join(kinds)}; got {kind!r}.",
        )
    defaults = DebuggerSettings(DebuggerKind(kind))
    port = reader.number(values.get("port"), f"{where}.port", 1, _MAX_PORT)
    wait = reader.flag(values.get("wait"), f"{where}.wait")
    return DebuggerSettings(
        kind=DebuggerKind(kind),
        host=reader.text(values.get("host"), f"{where}.host") or defaults.host,
        port=defaults.port if port is None else port,
        wait=defaults.wait if wait is None else wait,
    )


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(path, "", f"cannot be read: {exc.strerror}.") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(path, where, f"is not valid YAML: {problem}.") from exc


class _Reader:
    """Checks the values of one file, naming the key of each one it refuses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent

    def refuse(self, key: str, expected: str, value: object) -> NoReturn:
        raise ConfigFileError(self.path, key, f"expected {expected}; got {value!r}.")

    def mapping(
        self, value: object, key: str, allowed: tuple[str, ...] | None
    ) -> dict[str, object]:
        if not isinstance(value, dict):
            self.refuse(key or "the file", "a mapping of keys to values", value)
        for name in value:
            if allowed is not None and name not in allowed:
                where = f"{key}.{name}" if key else str(name)
                raise ConfigFileError(
                    self.path,
                    where,
                    f"unknown key; expected one of {', '.join(allowed)}.",
                )
        return {str(name): item for name, item in value.items()}

    def text(self, value: object, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.refuse(key, "a non-empty string", value)
        return value

    def flag(self, value: object, key: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.refuse(key, "true or false", value)

    def number(
        self, value: object, key: str, least: int, most: int | None = None
    ) -> int | None:
        if value is None:
            return None
        bound = f"of at least {least}" if most is None else f"from {least} to {most}"
        if not isinstance(value, int) or isinstance(value, bool):
            self.refuse(key, f"a whole number {bound}", value)
        if value < least or (most is not None and value > most):
            self.refuse(key, f"a whole number {bound}", value)
        return value

    def sequence(self, value: object, key: str) -> list[object]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.refuse(key, "a list", value)
        return value

    def variables(self, value: object, key: str) -> list[tuple[str, str]]:
        if value is None:
            return []
        pairs = []
        for name, item in self.mapping(value, key, None).items():
            if name in RESERVED_NAMES:
                raise ConfigFileError(
                    self.path,
                    f"{key}.{name}",
                    "reserved: Lambda sets it, and a function cannot.",
                )
            if not isinstance(item, str | int | float | bool):
                self.refuse(f"{key}.{name}", "a string, number or boolean", item)
            text = ("true" if item else "false") if isinstance(item, bool) else item
            pairs.append((name, str(text)))
        return pairs

    def file(self, value: object, key: str) -> Path | None:
        text = self.text(value, key)
        if text is None:
            return None
        path = self.base / text
        if not path.is_file():
            self.refuse(key, "the path of an existing file", value)
        return path

    def directory(self, value: object, key: str) -> Path | None:
        text = self.text(value, key)
        if text is None:
            return None
        path = (self.base / text).resolve()
        if not path.is_dir():
            self.refuse(key, "the path of an existing directory", value)
        return path
