"""Commands for functions: attach, detach, and run (serve them in the lab)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bridge.cli.common import (
    EXIT_FAILED,
    aws_options,
    catalog_options,
    load_catalog_for,
    make_clients,
    stack_name_of,
    user_errors,
)
from bridge.console import Console
from bridge.poller import OutcomeListener


@click.command()
@click.argument("functions", nargs=-1, required=True)
@aws_options
@catalog_options
@click.option(
    "--debug",
    "for_debugging",
    is_flag=True,
    help="Raise the timeout for debugging: to --timeout, else 900 s.",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 900),
    help="Timeout in seconds while attached.  [default: the function's own; 900 "
    "with --debug]",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would change; change nothing."
)
@click.pass_context
def attach(
    context: click.Context,
    functions: tuple[str, ...],
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    template: Path | None,
    config_path: Path | None,
    for_debugging: bool,
    timeout: int | None,
    dry_run: bool,
) -> None:
    """Route FUNCTIONS' invocations to the lab without a redeploy.

    Each FUNCTION is a name in AWS, or a logical id in the template. Its
    configuration is recorded first (here and in AWS), then it runs the proxy
    until `mless detach` restores it.
    """
    from bridge.attach import DEBUG_TIMEOUT_SECONDS, Attacher
    from bridge.config import load_project_config
    from bridge.stack import read_stack_outputs

    with user_errors(context):
        config = load_project_config(config_path)
        name = stack_name_of(stack_name, config)
        clients = make_clients(profile, region, endpoint_url)
        outputs = read_stack_outputs(clients.client("cloudformation"), name)
        catalog = load_catalog_for(
            clients, config, template, outputs.proxy_function_name
        )
        attacher = Attacher(clients)
        seconds = timeout or (DEBUG_TIMEOUT_SECONDS if for_debugging else None)
        plans = [
            attacher.plan_attach(catalog.aws_name(f), outputs, timeout_seconds=seconds)
            for f in functions
        ]
        for plan in plans:
            for line in plan.steps():
                click.echo(line if dry_run else f"  {line}", err=not dry_run)
            for note in plan.notes:
                click.echo(f"note: {note}", err=True)
            if not dry_run:
                attacher.attach(plan)
                click.echo(f"attached {plan.function_name}")


@click.command()
@click.argument("functions", nargs=-1)
@aws_options
@catalog_options
@click.option(
    "--dry-run", is_flag=True, help="Print what would change; change nothing."
)
@click.pass_context
def detach(
    context: click.Context,
    functions: tuple[str, ...],
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    template: Path | None,
    config_path: Path | None,
    dry_run: bool,
) -> None:
    """Restore attached FUNCTIONS exactly as they were (all, when none is named).

    Says what differs, if a restore cannot be exact, and exits 1 then.
    """
    from bridge.attach import Attacher
    from bridge.config import load_project_config
    from bridge.detach import describe_report
    from bridge.stack import read_stack_outputs

    exact = True
    with user_errors(context):
        config = load_project_config(config_path)
        clients = make_clients(profile, region, endpoint_url)
        attacher = Attacher(clients)
        if functions:
            catalog = load_catalog_for(clients, config, template, None)
            plans = [attacher.plan_detach(catalog.aws_name(f)) for f in functions]
        else:
            name = stack_name_of(stack_name, config)
            outputs = read_stack_outputs(clients.client("cloudformation"), name)
            plans = [attacher.plan_detach(s) for s in attacher.attached(outputs)]
            if not plans:
                click.echo(f"no function is attached to stack {name}", err=True)
        for plan in plans:
            if dry_run:
                for line in plan.steps():
                    click.echo(line)
                continue
            report = attacher.detach(plan)
            exact = exact and report.exact
            for line in describe_report(report):
                click.echo(line)
    if not exact:
        sys.exit(EXIT_FAILED)


@click.command()
@aws_options
@catalog_options
@click.option(
    "--attach",
    "attach_functions",
    multiple=True,
    metavar="FUNCTION",
    help="Attach FUNCTION while serving, and detach it on Ctrl+C or SIGTERM; "
    "repeatable.  [default: none]",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 900),
    help="Timeout of the --attach functions while attached, in seconds.  "
    "[default: their own; 900 when mless.yaml gives one a debugger]",
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds running invocations get to finish after Ctrl+C.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per log event.")
@click.option("--no-color", is_flag=True, help="Plain text, whatever the terminal.")
@click.option(
    "--no-history",
    is_flag=True,
    help="Do not record invocations for `mless history` and `mless replay`.",
)
@click.pass_context
def run(
    context: click.Context,
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    template: Path | None,
    config_path: Path | None,
    attach_functions: tuple[str, ...],
    timeout: int | None,
    grace: float,
    as_json: bool,
    no_color: bool,
    no_history: bool,
) -> None:
    """Serve the stack's invocations with local code until Ctrl+C or SIGTERM.

    Serves the functions of mless.yaml and the template, those attached to
    the stack, and those given with --attach. Functions that an earlier run
    left attached when it ended are restored first (after asking, on a
    terminal).
    """
    from bridge.attach import DEBUG_TIMEOUT_SECONDS, Attacher
    from bridge.config import load_project_config
    from bridge.errors import LabAlreadyServingError
    from bridge.function_catalog import served_functions
    from bridge.heartbeat import other_lab_serving
    from bridge.lab import Lab
    from bridge.poller import Queues
    from bridge.run_attachments import attached_while_running, recover_stale
    from bridge.shutdown import serve_until_signalled
    from bridge.stack import read_stack_outputs

    console = Console(
        color=False if no_color else None, json_lines=as_json, await_outcomes=True
    )
    with user_errors(context):
        config = load_project_config(config_path)
        name = stack_name_of(stack_name, config)
        clients = make_clients(profile, region, endpoint_url)
        outputs = read_stack_outputs(clients.client("cloudformation"), name)
        other = other_lab_serving(clients.client("s3"), outputs.payload_bucket_name)
        if other is not None:
            raise LabAlreadyServingError(other, name)
        catalog = load_catalog_for(
            clients, config, template, outputs.proxy_function_name
        )
        attacher = Attacher(clients)
        to_attach = [catalog.aws_name(function) for function in attach_functions]
        recover_stale(
            attacher, outputs, keep=to_attach, confirm=_ask_restore, say=console.note
        )
        attached = [s.function_name for s in attacher.attached(outputs)]
        functions = served_functions(
            catalog, [*to_attach, *attached], attacher.deployed, Path.cwd()
        )
        debugging = any(f.debugger for f in functions if f.name in to_attach)
        seconds = timeout or (DEBUG_TIMEOUT_SECONDS if debugging else None)
        queues = Queues(
            request_queue_url=outputs.request_queue_url,
            dead_letter_queue_url=outputs.dead_letter_queue_url,
            reply_queue_prefix=outputs.reply_queue_prefix,
            payload_bucket=outputs.payload_bucket_name,
        )
        with attached_while_running(
            attacher, outputs, to_attach, timeout_seconds=seconds, say=console.note
        ):
            lab = Lab(
                clients.client("sqs"),
                queues,
                functions,
                console,
                endpoint_url=endpoint_url,
                reload=config.reload,
                on_outcome=_listeners(console, functions, record=not no_history),
            )
            served = ", ".join(f.name for f in functions) or "no function"
            console.note(f"serving {served} for stack {name}; Ctrl+C stops")
            exit_status = serve_until_signalled(lab, grace, note=console.note)
    sys.exit(exit_status)


def _listeners(console: Console, functions: list[Any], record: bool) -> OutcomeListener:
    """Show each outcome in the console and, unless told not to, record it."""
    from bridge.history import History, HistoryRecorder, notify_each

    if not record:
        return console.on_outcome
    return notify_each(console.on_outcome, HistoryRecorder(History(), functions))


def _ask_restore(snapshot: Any) -> bool:
    """Ask before restoring on a terminal; restore at once without one."""
    if not sys.stdin.isatty():
        return True
    return click.confirm(
        f"Restore {snapshot.function_name} now?", default=True, err=True
    )
