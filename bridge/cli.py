"""The `mless` command: parses options, calls the work, prints results.

Exit codes: 0 success, 1 the operation failed (a function error, an AWS
failure), 2 a usage or configuration error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import click

from bridge.config import FunctionSettings, current_python_runtime
from bridge.console import Console
from bridge.errors import ConfigurationError, MlessError

EXIT_FAILED = 1
EXIT_USAGE = 2


@click.group()
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def main(context: click.Context, debug: bool) -> None:
    """Run AWS Lambda handlers on this machine, triggered by real events."""
    context.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="mless: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        # botocore logs each retry; the lab reports what matters itself.
        logging.getLogger("botocore").setLevel(logging.ERROR)


def _key_value(
    context: click.Context, parameter: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        pairs.append((key, rest))
    return tuple(pairs)


@main.command()
@click.argument("handler")
@click.option(
    "--code-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Directory holding the handler's code (Lambda's /var/task).",
)
@click.option(
    "--event",
    "events",
    type=click.File("rb"),
    multiple=True,
    help="JSON file with one event; repeat for several invocations. "
    "Default: one invocation with {}.",
)
@click.option(
    "--runtime",
    default=current_python_runtime,
    show_default="the running Python",
    help="Lambda runtime, e.g. python3.12 or nodejs20.x.",
)
@click.option("--timeout", default=3, show_default=True, help="Timeout in seconds.")
@click.option("--memory", default=128, show_default=True, help="Memory in MB.")
@click.option(
    "--env",
    "environment",
    multiple=True,
    callback=_key_value,
    help="KEY=VALUE of the function's environment; repeatable.",
)
@click.option(
    "--function-name",
    default=None,
    help="Function name.  [default: derived from the handler]",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Invocations run at once.",
)
@click.pass_context
def invoke(
    context: click.Context,
    handler: str,
    code_dir: Path,
    events: tuple[BinaryIO, ...],
    runtime: str,
    timeout: int,
    memory: int,
    environment: tuple[tuple[str, str], ...],
    function_name: str | None,
    concurrency: int,
) -> None:
    """Invoke HANDLER through the whole bridge on the local cloud.

    Prints one line per event on stdout: the payload the caller receives,
    exactly as Lambda returns it. Logs go to stderr. Exits 1 when any
    invocation returned a function error.
    """
    from bridge.invoke import FunctionDeployment, invoke_events

    name = function_name or _function_name(handler)
    payloads = [event.read() for event in events] or [b"{}"]
    with _user_errors(context):
        settings = FunctionSettings(
            name, handler, code_dir.resolve(), runtime=runtime, concurrency=concurrency
        )
        deployment = FunctionDeployment(timeout, memory, environment)
        results = invoke_events(
            settings, deployment, payloads, Console(), concurrency=concurrency
        )
    for result in results:
        sys.stdout.buffer.write(result.payload + b"\n")
    sys.stdout.flush()
    if any(result.function_error for result in results):
        sys.exit(EXIT_FAILED)


@main.command()
@click.pass_context
def demo(context: click.Context) -> None:
    """Run the S3 hash chain on the local cloud and verify every hash."""
    from bridge.demo import run_demo

    console = Console()
    with _user_errors(context):
        checks = run_demo(console, console.note)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.key}.sha1 = {check.found or 'missing'}")
    passed = sum(check.ok for check in checks)
    click.echo(f"{passed} of {len(checks)} hashes verified")
    if passed != len(checks):
        sys.exit(EXIT_FAILED)


def _function_name(handler: str) -> str:
    module = handler.rsplit(".", 1)[0].replace("/", "-").replace(".", "-")
    return f"{module}-function"[:64]


@contextmanager
def _user_errors(context: click.Context) -> Iterator[None]:
    """Turn mless's own errors into one line on stderr and an exit code."""
    try:
        yield
    except MlessError as exc:
        if context.obj and context.obj.get("debug"):
            logging.getLogger(__name__).exception("mless failed")
        click.echo(f"mless: {exc}", err=True)
        sys.exit(EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_FAILED)
