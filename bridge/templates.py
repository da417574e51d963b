"""CloudFormation and SAM templates: read them, and find each function's local code.

A template is YAML or JSON whose intrinsic functions may be written as tags
(`!Ref`, `!GetAtt`, `!Sub`, ...); they load as the JSON form CloudFormation
itself uses (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`). Values that only a
deployed stack knows (a resource's ARN, a queue's URL) cannot be resolved
here: `resolve` gives None for them, and callers leave such a value out. The
proxy forwards a function's deployed variables with every invocation, so a
variable left out here still reaches the handler.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from botocore.exceptions import ClientError

from bridge.errors import AwsError, ConfigFileError, StackNotFoundError

logger = logging.getLogger(__name__)

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"

SAM_CONFIG_NAME = "samconfig.toml"

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A YAML loader that reads `!Ref x` as {"Ref": x}, `!Sub y` as {"Fn::Sub": y}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON template file; ConfigFileError says where it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(path, "", f"cannot be read: {exc.strerror}.") from exc
    return load_template_text(text, path)


def load_template_text(text: str, source: object = "the template") -> dict[str, Any]:
    """Parse a YAML or JSON template; ConfigFileError says where it is wrong."""
    try:
        document = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(source, where, f"is not valid YAML: {problem}.") from exc
    if not isinstance(document, dict) or not isinstance(
        document.get("Resources"), dict
    ):
        raise ConfigFileError(source, "Resources", "expected a mapping of resources.")
    return document


@dataclass(frozen=True)
class Context:
    """What intrinsic functions can be resolved against, outside CloudFormation.

    `parameters` are the template's parameter values (their defaults unless
    given), `pseudo` the pseudo parameters known here (AWS::Region, ...) and
    `physical_ids` the names of a deployed stack's resources by logical id.
    """

    parameters: Mapping[str, str] = field(default_factory=dict)
    pseudo: Mapping[str, str] = field(default_factory=dict)
    physical_ids: Mapping[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> str | None:
        for names in (self.pseudo, self.parameters, self.physical_ids):
            if name in names:
                return names[name]
        return None


def default_context(
    template: Mapping[str, Any],
    *,
    region: str | None = None,
    stack_name: str | None = None,
    physical_ids: Mapping[str, str] | None = None,
) -> Context:
    """Return a context of the template's parameter defaults and what is known."""
    parameters = {}
    for name, parameter in (template.get("Parameters") or {}).items():
        default = parameter.get("Default") if isinstance(parameter, dict) else None
        if isinstance(default, str | int | float | bool):
            parameters[name] = _scalar_text(default)
    pseudo = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    if region:
        pseudo["AWS::Region"] = region
    if stack_name:
        pseudo["AWS::StackName"] = stack_name
    return Context(parameters, pseudo, dict(physical_ids or {}))


def resolve(value: Any, context: Context) -> str | None:
    """Return a template value as text, or None if only CloudFormation knows it."""
    if isinstance(value, str | int | float | bool):
        return _scalar_text(value)
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((function, argument),) = value.items()
    if function == "Ref" and isinstance(argument, str):
        return context.ref(argument)
    if function == "Fn::Sub":
        return _resolve_sub(argument, context)
    if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
        delimiter, parts = argument
        texts = [resolve(part, context) for part in parts or []]
        if isinstance(delimiter, str) and all(t is not None for t in texts):
            return delimiter.join(t for t in texts if t is not None)
    return None


def _resolve_sub(argument: Any, context: Context) -> str | None:
    if isinstance(argument, str):
        text, variables = argument, {}
    elif isinstance(argument, list) and len(argument) == 2:
        text, variables = argument
    else:
        return None
    unresolved = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1).strip()
        found = (
            resolve(variables[name], context)
            if name in variables
            else context.ref(name)
        )
        if found is None:
            unresolved = True
            return ""
        return found

    # ${!Literal} is Fn::Sub's escape for a literal ${Literal}.
    result = _SUB_VARIABLE.sub(substitute, text).replace("${!", "${")
    return None if unresolved else result


def _scalar_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class TemplateFunction:
    """A function as a template declares it, with paths made absolute.

    `code_dir` is None when the code is not in a local directory (an S3
    location, inline code, an image).
    """

    logical_id: str
    function_name: str | None
    code_dir: Path | None
    handler: str | None
    runtime: str | None
    environment: tuple[tuple[str, str], ...]
    layers: tuple[Path, ...]


def template_functions(
    path: Path,
    *,
    region: str | None = None,
    stack_name: str | None = None,
    physical_ids: Mapping[str, str] | None = None,
) -> dict[str, TemplateFunction]:
    """Return the functions a SAM or CloudFormation template declares, by logical id.

    `stack_name` and `physical_ids` describe the stack deployed from the
    template, when known: values that refer to it can then be resolved.
    """
    template = load_template(path)
    context = default_context(
        template, region=region, stack_name=stack_name, physical_ids=physical_ids
    )
    resources: dict[str, Any] = template["Resources"]
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    layers = _local_layers(resources, path.parent)
    functions = {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        if kind == SERVERLESS_FUNCTION:
            properties = merge_globals(globals_, properties)
        elif kind != LAMBDA_FUNCTION:
            continue
        functions[logical_id] = _function(
            logical_id, kind, properties, path, context, layers
        )
    return functions


def merge_globals(globals_: Any, properties: Any) -> Any:
    """Apply SAM's Globals to a resource's properties, as SAM does.

    The resource's scalars replace the global ones, maps are merged key by
    key, and the global entries of a list come first.
    """
    if isinstance(globals_, dict) and isinstance(properties, dict):
        merged = dict(globals_)
        for key, value in properties.items():
            merged[key] = (
                merge_globals(globals_[key], value) if key in globals_ else value
            )
        return merged
    if isinstance(globals_, list) and isinstance(properties, list):
        return globals_ + properties
    return properties


def _function(
    logical_id: str,
    kind: str,
    properties: Mapping[str, Any],
    path: Path,
    context: Context,
    local_layers: Mapping[str, Path],
) -> TemplateFunction:
    code = properties.get("CodeUri" if kind == SERVERLESS_FUNCTION else "Code")
    code_dir = _local_dir(code, path.parent)
    name = properties.get("FunctionName")
    return TemplateFunction(
        logical_id=logical_id,
        function_name=resolve(name, context) if name is not None else None,
        code_dir=code_dir,
        handler=resolve(properties.get("Handler"), context),
        runtime=resolve(properties.get("Runtime"), context),
        environment=_variables(logical_id, properties, context),
        layers=tuple(
            local_layers[layer["Ref"]]
            for layer in properties.get("Layers") or []
            if isinstance(layer, dict) and layer.get("Ref") in local_layers
        ),
    )


def _variables(
    logical_id: str, properties: Mapping[str, Any], context: Context
) -> tuple[tuple[str, str], ...]:
    environment = properties.get("Environment") or {}
    variables = (
        environment.get("Variables") or {} if isinstance(environment, dict) else {}
    )
    resolved = []
    for name, value in variables.items() if isinstance(variables, dict) else ():
        text = resolve(value, context)
        if text is None:
            logger.debug(
                "%s: %s is known only once deployed; the proxy forwards it",
                logical_id,
                name,
            )
            continue
        resolved.append((str(name), text))
    return tuple(resolved)


def _local_layers(resources: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """The template's layers whose content is a local directory, by logical id."""
    layers = {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        properties = resource.get("Properties") or {}
        if resource.get("Type") == SERVERLESS_LAYER:
            content = properties.get("ContentUri")
        elif resource.get("Type") == LAMBDA_LAYER:
            content = properties.get("Content")
        else:
            continue
        directory = _local_dir(content, root)
        if directory is not None:
            layers[logical_id] = directory
    return layers


def _local_dir(location: Any, root: Path) -> Path | None:
    # A string is a path relative to the template (as `sam build` and
    # `aws cloudformation package` read it); a mapping is an S3 location.
    if not isinstance(location, str) or "://" in location:
        return None
    directory = (root / location).resolve()
    return directory if directory.is_dir() else None


def sam_stack_name(template: Path) -> str | None:
    """Return the stack name `sam deploy` uses for a template, from samconfig.toml."""
    path = template.parent / SAM_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(path, "", f"cannot be read: {exc}") from exc
    name = config.get("default", {}).get("deploy", {}).get("parameters", {})
    stack_name = name.get("stack_name") if isinstance(name, dict) else None
    return stack_name if isinstance(stack_name, str) and stack_name else None


def deployed_physical_ids(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """Return the physical ids of a deployed stack's resources, by logical id.

    A SAM function's logical id is also that of the Lambda function SAM
    creates for it, so this maps a template's functions to their AWS names.
    """
    pages = cloudformation.get_paginator("list_stack_resources").paginate(
        StackName=stack_name
    )
    try:
        return {
            summary["LogicalResourceId"]: summary["PhysicalResourceId"]
            for page in pages
            for summary in page["StackResourceSummaries"]
            if summary.get("PhysicalResourceId")
        }
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise StackNotFoundError(
                stack_name, cloudformation.meta.region_name
            ) from exc
        raise AwsError.from_client_error(exc, f"stack {stack_name}") from exc
