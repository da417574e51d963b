"""Lab-side settings of each function: where its code is and how to run it.

They come from three places, the first that says something winning: the
project's mless.yaml, the function's SAM or CloudFormation template, and the
function's deployed configuration in AWS (its handler and runtime).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import NoReturn

import yaml  # type: ignore[import-untyped]

from bridge.environments.variables import RESERVED_NAMES
from bridge.errors import ConfigFileError, ConfigurationError
from bridge.templates import TemplateFunction, sam_stack_name, template_functions

logger = logging.getLogger(__name__)

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


# --- mless.yaml ---------------------------------------------------------------
#
# The lab-side settings of a project, all optional:
#
#   stack: mless                 the mless stack to serve
#   template: template.yaml      a SAM or CloudFormation template of the functions
#   template_stack: my-app       the stack deployed from that template
#   reload: false                keep environments when the code changes (default true)
#   functions:
#     HashFunction:              a logical id in the template, or a name in AWS
#       name: my-app-hash        the function's name in AWS
#       proxy: true              its events go to the stack's proxy function
#       code_dir: src/hash       handler: app.handler    runtime: python3.12
#       interpreter: .venv/bin/python
#       layers: [layers/common]
#       concurrency: 2
#       environment: {STAGE: dev}
#       debugger: {kind: debugpy, host: 127.0.0.1, port: 5678, wait: true}
#
# Relative paths are relative to the file.

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


# --- From the files to the lab ------------------------------------------------


@dataclass(frozen=True)
class DeployedFunction:
    """A function's handler and runtime as deployed: the last source of each."""

    name: str
    handler: str
    runtime: str
    # Lambda never runs more environments of a function than its reserved
    # concurrency, so neither does the lab unless mless.yaml says otherwise.
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class _Entry:
    name: str | None
    config: FunctionConfig | None = None
    template: TemplateFunction | None = None

    @property
    def label(self) -> str:
        if self.config is not None:
            return self.config.key
        return self.template.logical_id if self.template else str(self.name)


class FunctionCatalog:
    """Every function mless.yaml and the template name, by their names in AWS.

    A template function's name in AWS is its FunctionName, or the physical id
    of its logical id in the stack deployed from the template.
    """

    def __init__(
        self,
        config: ProjectConfig,
        template: Mapping[str, TemplateFunction] | None = None,
        *,
        physical_ids: Mapping[str, str] | None = None,
        proxy_function_name: str | None = None,
    ) -> None:
        self._config = config
        self._entries = _entries(
            config, template or {}, physical_ids or {}, proxy_function_name
        )

    def aws_name(self, key: str) -> str:
        """Return the AWS name of a function named by key, logical id or AWS name."""
        entry = self._find(key)
        if entry is None:
            return key
        if entry.name is None:
            raise ConfigurationError(
                f"The name in AWS of {key!r} is not known: deploy its template and "
                f"set template_stack in {CONFIG_FILE_NAME}, or set "
                f"functions.{key}.name there."
            )
        return entry.name

    def names(self) -> list[str]:
        """Return the AWS names of every function whose name is known."""
        return [entry.name for entry in self._entries if entry.name is not None]

    def settings(
        self,
        name: str,
        deployed: DeployedFunction | None = None,
        default_code_dir: Path | None = None,
    ) -> FunctionSettings:
        """Return how the lab runs a function, from whatever names it."""
        entry = self._find(name) or _Entry(name)
        config = entry.config or FunctionConfig(key=name)
        template = entry.template
        handler = config.handler or (template and template.handler)
        runtime = config.runtime or (template and template.runtime)
        if deployed is not None:
            handler, runtime = handler or deployed.handler, runtime or deployed.runtime
        code_dir = config.code_dir or (template.code_dir if template else None)
        if code_dir is None and template is None:
            code_dir = default_code_dir
        if not handler or code_dir is None:
            missing = "handler" if not handler else "code_dir"
            raise ConfigurationError(
                f"The {missing} of function {name!r} is not known: set "
                f"functions.{entry.label}.{missing} in {CONFIG_FILE_NAME}."
            )
        template_environment = template.environment if template else ()
        return FunctionSettings(
            name=name,
            handler=handler,
            code_dir=code_dir,
            runtime=runtime or current_python_runtime(),
            interpreter=config.interpreter,
            layers=(template.layers if template else ()) + config.layers,
            concurrency=config.concurrency
            or (deployed.reserved_concurrency if deployed else None)
            or FunctionSettings.concurrency,
            environment=tuple(dict(template_environment + config.environment).items()),
            debugger=config.debugger,
        )

    def _find(self, key: str) -> _Entry | None:
        for entry in self._entries:
            keys = {entry.name, entry.label}
            if entry.template is not None:
                keys.add(entry.template.logical_id)
            if key in keys:
                return entry
        return None


def _entries(
    config: ProjectConfig,
    template: Mapping[str, TemplateFunction],
    physical_ids: Mapping[str, str],
    proxy_function_name: str | None,
) -> list[_Entry]:
    entries = []
    for logical_id, function in template.items():
        own = config.functions.get(logical_id)
        entries.append(
            _Entry(
                _entry_name(own, proxy_function_name)
                or function.function_name
                or physical_ids.get(logical_id),
                own,
                function,
            )
        )
    for key, own in config.functions.items():
        if key not in template:
            name = _entry_name(own, proxy_function_name)
            entries.append(_Entry(name if own.proxy else name or key, own))
    return entries


def _entry_name(
    config: FunctionConfig | None, proxy_function_name: str | None
) -> str | None:
    if config is None:
        return None
    if config.proxy:
        # Without the stack at hand, the proxy's name stays unknown.
        return proxy_function_name
    return config.name


def load_catalog(
    config: ProjectConfig,
    template: Path | None = None,
    *,
    region: str | None = None,
    physical_ids_of: Callable[[str], Mapping[str, str]] | None = None,
    proxy_function_name: str | None = None,
) -> FunctionCatalog:
    """Return the functions of mless.yaml and of a template (by default its own).

    The stack deployed from the template is mless.yaml's template_stack, else
    the one in the template's samconfig.toml; `physical_ids_of` reads its
    resources' names, which is how a function's logical id finds its name.
    """
    template = template or config.template
    if template is None:
        return FunctionCatalog(config, proxy_function_name=proxy_function_name)
    template_stack = config.template_stack or sam_stack_name(template)
    physical_ids: Mapping[str, str] = {}
    if template_stack and physical_ids_of is not None:
        physical_ids = physical_ids_of(template_stack)
    functions = template_functions(
        template, region=region, stack_name=template_stack, physical_ids=physical_ids
    )
    return FunctionCatalog(
        config,
        functions,
        physical_ids=physical_ids,
        proxy_function_name=proxy_function_name,
    )


def served_functions(
    catalog: FunctionCatalog,
    required: Sequence[str],
    deployed_of: Callable[[str], DeployedFunction | None],
    default_code_dir: Path,
) -> list[FunctionSettings]:
    """Return the settings of every function the lab can serve, by AWS name.

    Each function in `required` must have settings: its error is raised. The
    catalog's other functions are served when their files say enough.
    """
    settings = {}
    for name in required:
        if name not in settings:
            deployed = deployed_of(name)
            settings[name] = catalog.settings(name, deployed, default_code_dir)
    for name in catalog.names():
        if name in settings:
            continue
        try:
            settings[name] = catalog.settings(name)
        except ConfigurationError as exc:
            logger.debug("not serving %s: %s", name, exc)
    return list(settings.values())
