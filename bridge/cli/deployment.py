"""Commands for the mless stack in an account: deploy, destroy and status."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from bridge.cli.common import (
    EXIT_FAILED,
    aws_options,
    confirm,
    make_clients,
    progress,
    stack_name_of,
    user_errors,
)
from bridge.errors import (
    ConfigurationError,
    StackNotFoundError,
)
from bridge.packaging import build_proxy_zip


@click.command()
@aws_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would change (a change set); change nothing.",
)
@click.option(
    "--name-prefix",
    help="Prefix of the proxy's name and its reply queues.  "
    "[default: the stack's current one, else the stack's name]",
)
@click.option(
    "--proxy-timeout",
    type=click.IntRange(1, 900),
    help="Proxy timeout in seconds.  [default: the stack's current one, else 30]",
)
@click.option(
    "--proxy-memory",
    type=click.IntRange(128, 10240),
    help="Proxy memory in MB.  [default: the stack's current one, else 256]",
)
@click.option(
    "--message-retention",
    type=click.IntRange(60, 1209600),
    help="How long an unanswered request waits, in seconds.  "
    "[default: the stack's current one, else 345600]",
)
@click.option(
    "--max-receive-count",
    type=click.IntRange(1, 1000),
    help="Receives before a request moves to the dead-letter queue.  "
    "[default: the stack's current one, else 5]",
)
@click.option(
    "--mode",
    type=click.Choice(["sync", "async", "mirror", "auto"]),
    help="How the proxy treats invocations.  [default: the stack's current one, "
    "else auto]",
)
@click.option(
    "--attachable-functions",
    help="IAM wildcard of the function names the lab policy may attach.  "
    "[default: the stack's current one, else *]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outputs as JSON.")
@click.pass_context
def deploy(
    context: click.Context,
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    dry_run: bool,
    name_prefix: str | None,
    proxy_timeout: int | None,
    proxy_memory: int | None,
    message_retention: int | None,
    max_receive_count: int | None,
    mode: str | None,
    attachable_functions: str | None,
    as_json: bool,
) -> None:
    """Create or update the mless stack; a second run changes nothing.

    Packages and uploads the proxy itself and shows the stack's events while
    it waits. Prints the stack's outputs.
    """
    from bridge.deploy import (
        apply_deploy,
        code_bucket_name,
        ensure_code_bucket,
        plan_deploy,
    )
    from bridge.deploy_preview import describe_plan, preview_changes
    from bridge.stack import StackSettings, read_stack_settings

    with user_errors(context):
        name = stack_name_of(stack_name)
        clients = make_clients(profile, region, endpoint_url)
        cloudformation = clients.client("cloudformation")
        tuned: dict[str, Any] = {
            "name_prefix": name_prefix,
            "proxy_timeout_seconds": proxy_timeout,
            "proxy_memory_mb": proxy_memory,
            "message_retention_seconds": message_retention,
            "max_receive_count": max_receive_count,
            "mode": mode,
            "attachable_functions": attachable_functions,
        }
        current = read_stack_settings(cloudformation, name)
        base = current or StackSettings(name_prefix=name)
        settings = dataclasses.replace(
            base, **{k: v for k, v in tuned.items() if v is not None}
        )
        s3, sts = clients.client("s3"), clients.client("sts")
        lambda_client = clients.client("lambda")
        if dry_run:
            # The bucket's name only: a dry run creates nothing.
            account = sts.get_caller_identity()["Account"]
            bucket = code_bucket_name(account, clients.region)
        else:
            bucket = ensure_code_bucket(s3, sts, clients.region)
        plan = plan_deploy(
            cloudformation,
            s3,
            stack_name=name,
            code_bucket=bucket,
            code=build_proxy_zip(),
            settings=settings,
            lambda_client=lambda_client,
        )
        if dry_run:
            changes = preview_changes(cloudformation, plan)
            for line in describe_plan(plan, changes):
                click.echo(line)
            return
        progress(f"stack {name} in {clients.region}: {plan.action.value}")
        outputs = apply_deploy(
            plan, cloudformation, s3, on_event=progress, lambda_client=lambda_client
        )
    _print_outputs(outputs, as_json)


def _print_outputs(outputs: Any, as_json: bool) -> None:
    values = dataclasses.asdict(outputs)
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    for key, value in values.items():
        click.echo(f"{key}: {value}")


@click.command()
@aws_options
@click.option("--yes", is_flag=True, help="Do not ask before deleting the stack.")
@click.pass_context
def destroy(
    context: click.Context,
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    yes: bool,
) -> None:
    """Delete the mless stack, its reply queues and its proxy layer.

    Refuses while functions are attached to it: detach them first.
    """
    from bridge.attach import Attacher
    from bridge.stack import read_stack_outputs
    from bridge.teardown import destroy_stack

    with user_errors(context):
        name = stack_name_of(stack_name)
        clients = make_clients(profile, region, endpoint_url)
        cloudformation = clients.client("cloudformation")
        try:
            outputs = read_stack_outputs(cloudformation, name)
        except StackNotFoundError:
            raise
        except ConfigurationError:
            outputs = None  # a stack without outputs has no attached functions
        if outputs is not None:
            attached = Attacher(clients).attached(outputs)
            if attached:
                names = ", ".join(s.function_name for s in attached)
                raise ConfigurationError(
                    f"Functions {names} are attached to stack {name}; detach them "
                    "first with `mless detach`."
                )
        confirm(f"Delete stack {name} in {clients.region}?", yes)
        deleted = destroy_stack(
            cloudformation,
            clients.client("sqs"),
            clients.client("s3"),
            stack_name=name,
            on_event=progress,
            lambda_client=clients.client("lambda"),
        )
    click.echo(f"deleted stack {name} and {len(deleted)} reply queue(s)")


@click.command()
@aws_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(
    context: click.Context,
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    as_json: bool,
) -> None:
    """Show the stack, its attached functions, its queues and whether a lab listens."""
    from bridge.attach import Attacher
    from bridge.stack import read_stack_outputs
    from bridge.stack_status import (
        read_function_mode,
        read_lab_presence,
        read_queue_depths,
    )
    from lambda_proxy.presence import Presence

    with user_errors(context):
        name = stack_name_of(stack_name)
        clients = make_clients(profile, region, endpoint_url)
        outputs = read_stack_outputs(clients.client("cloudformation"), name)
        depths = read_queue_depths(clients.client("sqs"), outputs)
        attacher = Attacher(clients)
        functions = [
            (snapshot, attacher.state_of(snapshot))
            for snapshot in attacher.attached(outputs)
        ]
        lab = read_lab_presence(clients.client("s3"), outputs)
        lambda_client = clients.client("lambda")
        running = [
            s.function_name for s, state in functions if state.name == "ATTACHED"
        ]
        modes = {
            function: read_function_mode(lambda_client, function)
            for function in [outputs.proxy_function_name, *running]
        }
    report = {
        "stack": name,
        "region": clients.region,
        "proxy_function": outputs.proxy_function_name,
        "proxy_mode": modes[outputs.proxy_function_name],
        "lab_listening": {Presence.ONLINE: True, Presence.OFFLINE: False}.get(
            lab.presence
        ),
        "lab": lab.detail,
        "lab_functions": list(lab.functions),
        "requests_waiting": depths.requests_waiting,
        "requests_in_flight": depths.requests_in_flight,
        "dead_letters": depths.dead_letters,
        "attached": [
            {
                "function": snapshot.function_name,
                "state": state.name.lower(),
                "mode": modes.get(snapshot.function_name),
                "since": snapshot.taken_at,
                "by_run": None if snapshot.session is None else snapshot.session.pid,
            }
            for snapshot, state in functions
        ],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_status(report, functions)
    if any(state.name != "ATTACHED" for _, state in functions):
        sys.exit(EXIT_FAILED)


def _print_status(report: dict[str, Any], functions: list[Any]) -> None:
    listening = {True: "listening", False: "not listening", None: "unknown"}
    lab = f"{listening[report['lab_listening']]}: {report['lab']}"
    if report["lab_listening"] and report["lab_functions"]:
        lab += f"; serves {', '.join(report['lab_functions'])}"
    click.echo(f"stack {report['stack']} in {report['region']}")
    click.echo(
        f"  proxy function: {report['proxy_function']} (mode {report['proxy_mode']})"
    )
    click.echo(f"  lab: {lab}")
    click.echo(
        f"  request queue: {report['requests_waiting']} waiting, "
        f"{report['requests_in_flight']} in flight"
    )
    click.echo(f"  dead-letter queue: {report['dead_letters']} message(s)")
    if not functions:
        click.echo("attached functions: none")
        return
    click.echo("attached functions:")
    modes = {entry["function"]: entry["mode"] for entry in report["attached"]}
    for snapshot, state in functions:
        mode = modes[snapshot.function_name]
        line = f"  {snapshot.function_name}: {state.value}"
        line += f", mode {mode}" if mode else ""
        line += f" (since {snapshot.taken_at})"
        if state.name != "ATTACHED":
            line += f"; `mless detach {snapshot.function_name}` forgets it"
        click.echo(line)
