"""What every mless command shares: exit codes, AWS options, error reporting."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from bridge.errors import (
    ConfigurationError,
    MlessError,
    from_botocore,
)

EXIT_FAILED = 1
EXIT_USAGE = 2


def key_value(
    context: click.Context, parameter: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    from bridge.environments.variables import RESERVED_NAMES

    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        if key in RESERVED_NAMES:
            # Lambda refuses them too (InvalidParameterValueException).
            raise click.BadParameter(
                f"{key} is reserved: Lambda sets it, and a function cannot"
            )
        pairs.append((key, rest))
    return tuple(pairs)


# --- Commands that work on an AWS account ----------------------------------------

STACK_VARIABLE = "MLESS_STACK"
ENDPOINT_VARIABLE = "MLESS_ENDPOINT_URL"
DEFAULT_STACK = "mless"


def aws_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options every command that talks to AWS takes."""
    options = [
        click.option(
            "--stack",
            "stack_name",
            envvar=STACK_VARIABLE,
            help=f"Name of the mless stack.  [default: ${STACK_VARIABLE}, else "
            f"mless.yaml's stack, else {DEFAULT_STACK}]",
        ),
        click.option(
            "--profile",
            envvar="AWS_PROFILE",
            help="AWS profile to take credentials and region from.  "
            "[default: $AWS_PROFILE, else boto3's credential chain]",
        ),
        click.option(
            "--region",
            envvar="AWS_REGION",
            help="AWS region.  [default: $AWS_REGION, else the profile's region]",
        ),
        click.option(
            "--endpoint-url",
            envvar=ENDPOINT_VARIABLE,
            help="Send every AWS call here instead, e.g. to a local cloud on "
            f"http://127.0.0.1:PORT.  [default: ${ENDPOINT_VARIABLE}, else AWS]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def stack_name_of(given: str | None, config: Any = None) -> str:
    """The stack a command works on: given, else mless.yaml's, else the default."""
    from bridge.config import load_project_config

    if given:
        return given
    config = config or load_project_config(None)
    return str(config.stack or DEFAULT_STACK)


def make_clients(
    profile: str | None, region: str | None, endpoint_url: str | None
) -> Any:
    from bridge.aws import Clients

    if endpoint_url and not endpoint_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"--endpoint-url {endpoint_url!r} is not a URL; give one like "
            "http://127.0.0.1:4570."
        )
    return Clients(profile=profile, region=region, endpoint_url=endpoint_url)


def progress(text: str) -> None:
    click.echo(f"  {text}", err=True)


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"{question} Pass --yes to confirm without a terminal."
        )
    if not click.confirm(question, default=False, err=True):
        raise click.Abort()


def catalog_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that say where the functions' settings are."""
    options = [
        click.option(
            "--template",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="SAM or CloudFormation template naming the functions (logical ids "
            "may then stand for names).  [default: mless.yaml's template, else none]",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Lab-side settings of the functions.  [default: ./mless.yaml if "
            "it exists]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_catalog_for(
    clients: Any,
    config: Any,
    template: Path | None,
    proxy_function_name: str | None,
) -> Any:
    from bridge.function_catalog import load_catalog
    from bridge.templates import deployed_physical_ids

    cloudformation = clients.client("cloudformation")
    return load_catalog(
        config,
        template,
        region=clients.region,
        physical_ids_of=lambda stack: deployed_physical_ids(cloudformation, stack),
        proxy_function_name=proxy_function_name,
    )


@contextmanager
def user_errors(context: click.Context) -> Iterator[None]:
    """Turn mless's own errors into one line on stderr and an exit code."""
    try:
        yield
    except Exception as exc:
        error = exc if isinstance(exc, MlessError) else from_botocore(exc)
        if error is None:
            raise
        if context.obj and context.obj.get("debug"):
            click.echo(traceback.format_exc(), err=True, nl=False)
        click.echo(f"mless: {error}", err=True)
        sys.exit(EXIT_USAGE if isinstance(error, ConfigurationError) else EXIT_FAILED)
