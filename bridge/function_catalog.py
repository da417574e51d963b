"""Every function the lab can serve, and the settings it runs each with.

A function's settings come from three places, the first that says something
winning: the project's mless.yaml, the function's SAM or CloudFormation
template, and the function's deployed configuration in AWS (its handler and
runtime).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.config import CONFIG_FILE_NAME, FunctionConfig, ProjectConfig
from bridge.errors import ConfigurationError
from bridge.function_settings import FunctionSettings, current_python_runtime
from bridge.templates import TemplateFunction, sam_stack_name, template_functions

logger = logging.getLogger(__name__)


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
