"""The `mless` command: parses options, calls the work, prints results.

Each module here holds the commands of one task; the work lives elsewhere
in bridge/. Exit codes: 0 success, 1 the operation failed (a function
error, an AWS failure), 2 a usage or configuration error.
"""

from __future__ import annotations

import logging
import sys

import click

from bridge.cli import deployment, functions, history, local


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


for command in (
    local.invoke,
    local.demo,
    local.local,
    deployment.deploy,
    deployment.destroy,
    deployment.status,
    functions.attach,
    functions.detach,
    functions.run,
    history.history,
    history.replay,
):
    main.add_command(command)
