"""Commands that run on the local cloud: invoke, demo and local."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import click

from bridge.cli.common import (
    DEFAULT_STACK,
    EXIT_FAILED,
    key_value,
    user_errors,
)
from bridge.console import Console
from bridge.errors import ConfigurationError
from bridge.function_settings import (
    DebuggerKind,
    DebuggerSettings,
    FunctionSettings,
    current_python_runtime,
)


@click.command()
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
@click.option(
    "--timeout",
    type=click.IntRange(1, 900),
    help="Timeout in seconds.  [default: 3; 900 with --debugger]",
)
@click.option(
    "--memory",
    default=128,
    show_default=True,
    type=click.IntRange(128, 10240),
    help="Memory in MB, as Lambda allows it.",
)
@click.option(
    "--debugger",
    metavar="KIND[:PORT]",
    help="Run under a debugger: debugpy (VS Code attaches to PORT), pydevd "
    "(connects to PyCharm's debug server on PORT) or node-inspect; PORT "
    "defaults to 5678 (9229 for node-inspect).  [default: none]",
)
@click.option(
    "--env",
    "environment",
    multiple=True,
    callback=key_value,
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
    timeout: int | None,
    memory: int,
    debugger: str | None,
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
    payloads = [_event_payload(event) for event in events] or [b"{}"]
    with user_errors(context):
        settings = FunctionSettings(
            name,
            handler,
            code_dir.resolve(),
            runtime=runtime,
            concurrency=concurrency,
            debugger=_debugger(debugger),
        )
        # A developer paused on a breakpoint needs Lambda's longest timeout.
        seconds = timeout or (900 if debugger else 3)
        deployment = FunctionDeployment(seconds, memory, environment)
        results = invoke_events(
            settings, deployment, payloads, Console(), concurrency=concurrency
        )
    for result in results:
        sys.stdout.buffer.write(result.payload + b"\n")
    sys.stdout.flush()
    if any(result.function_error for result in results):
        sys.exit(EXIT_FAILED)


@click.command()
@click.pass_context
def demo(context: click.Context) -> None:
    """Run the S3 hash chain on the local cloud and verify every hash."""
    from bridge.demo import run_demo

    console = Console()
    with user_errors(context):
        checks = run_demo(console, console.note)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.key}.sha1 = {check.found or 'missing'}")
    passed = sum(check.ok for check in checks)
    click.echo(f"{passed} of {len(checks)} hashes verified")
    if passed != len(checks):
        sys.exit(EXIT_FAILED)


def _event_payload(event: BinaryIO) -> bytes:
    """Read one --event file; refuse it, naming the file, unless it is JSON."""
    payload = event.read()
    try:
        json.loads(payload)
    except ValueError as exc:
        raise click.BadParameter(
            f"{event.name} is not JSON: {exc}", param_hint="--event"
        ) from None
    return payload


def _debugger(given: str | None) -> DebuggerSettings | None:
    """Parse --debugger KIND[:PORT] into the settings the pool uses."""
    if not given:
        return None
    kind_name, _, port = given.partition(":")
    try:
        kind = DebuggerKind(kind_name)
    except ValueError:
        kinds = ", ".join(kind.value for kind in DebuggerKind)
        raise ConfigurationError(
            f"--debugger {given!r}: the kind must be one of {kinds}."
        ) from None
    if port and not port.isdigit():
        raise ConfigurationError(f"--debugger {given!r}: the port must be a number.")
    default_port = 9229 if kind is DebuggerKind.NODE_INSPECT else 5678
    return DebuggerSettings(kind, port=int(port or default_port))


def _function_name(handler: str) -> str:
    module = handler.rsplit(".", 1)[0].replace("/", "-").replace(".", "-")
    return f"{module}-function"[:64]


@click.command()
@click.option(
    "--function",
    "functions",
    multiple=True,
    metavar="NAME[=BUCKET]",
    help="Create function NAME with the proxy as its code; with =BUCKET, new "
    "objects in BUCKET (created if missing) trigger it. Repeatable.",
)
@click.option(
    "--timeout",
    default=3,
    show_default=True,
    type=click.IntRange(1, 900),
    help="The functions' timeout in seconds (Lambda's range, 1 to 900).",
)
@click.option(
    "--port",
    default=4570,
    type=click.IntRange(1, 65535),
    show_default=True,
    help="Loopback port of the local cloud's endpoint.",
)
@click.option(
    "--stack",
    "stack_name",
    default=DEFAULT_STACK,
    show_default=True,
    help="Name of the stack deployed into the local cloud.",
)
@click.pass_context
def local(
    context: click.Context,
    functions: tuple[str, ...],
    timeout: int,
    port: int,
    stack_name: str,
) -> None:
    """Run a local cloud in the foreground until Ctrl+C.

    moto's server with the mless stack deployed, a stand-in for Lambda that
    runs the proxy, and S3 notifications, all behind one endpoint on
    127.0.0.1. Serve it from another terminal with
    `mless run --endpoint-url http://127.0.0.1:PORT`, and trigger it with the
    AWS CLI or boto3 pointed at the same endpoint.
    """
    from bridge.local_session import LocalFunction, run_local_cloud

    wanted = []
    for given in functions:
        name, _, bucket = given.partition("=")
        wanted.append(LocalFunction(name, timeout, bucket=bucket or None))
    console = Console()
    # SIGTERM stops the local cloud as Ctrl+C does, moto's server included.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with user_errors(context):
        try:
            run_local_cloud(wanted, console.note, port=port, stack_name=stack_name)
        except KeyboardInterrupt:
            console.note("local cloud stopped")
