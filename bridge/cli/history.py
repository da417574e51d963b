"""Commands for recorded invocations: history, and replay against current code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bridge.cli.common import EXIT_FAILED, user_errors
from bridge.console import Console


@click.command()
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1), help="How many."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def history(context: click.Context, limit: int, as_json: bool) -> None:
    """List the invocations that reached the lab, newest first.

    Records are kept under $MLESS_HOME/history (default ~/.mless/history),
    without credentials; `mless replay ID` runs one again.
    """
    from bridge.history import History, summary, summary_line

    with user_errors(context):
        records = History().recent(limit)
    for record in records:
        click.echo(json.dumps(summary(record)) if as_json else summary_line(record))
    if not records and not as_json:
        click.echo("no invocation has reached the lab yet", err=True)


@click.command()
@click.argument("record_id")
@click.option(
    "--save",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the recorded event to FILE as a test fixture, and run nothing.",
)
@click.option("--no-color", is_flag=True, help="Plain text logs.")
@click.pass_context
def replay(
    context: click.Context, record_id: str, save: Path | None, no_color: bool
) -> None:
    """Run a recorded invocation again against the current code, locally.

    RECORD_ID is a request id from `mless history`, or a unique prefix of one.
    The event and context fields are the recorded ones, the deadline is new.
    Prints the payload a caller would receive; exits 1 on a function error.
    """
    from bridge.history import History
    from bridge.replay import replay as run_again
    from bridge.replay import save_fixture

    with user_errors(context):
        record = History().load(record_id)
        if save is not None:
            save_fixture(record, save)
            click.echo(f"event of {record_id} written to {save}", err=True)
            return
        result = run_again(record, Console(color=False if no_color else None))
    sys.stdout.buffer.write(result.payload + b"\n")
    sys.stdout.flush()
    if not result.same_as_recorded:
        click.echo("mless: the result differs from the recorded one", err=True)
    if result.function_error:
        sys.exit(EXIT_FAILED)
