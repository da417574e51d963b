"""Run the two-function chain on the local cloud: S3 -> count -> SQS -> store -> S3.

    .venv/bin/python examples/chain/run_local.py [FILE ...]

It starts moto's server on loopback and deploys the mless stack into it,
creates both functions with the proxy as their code (as attaching them
does), connects the uploads bucket to `count` and the queue to `store` (as
an S3 notification and an event source mapping do in AWS), and serves both
functions from one lab. Each FILE (default: this example's README) is
uploaded; once its counts have reached the results bucket they are printed,
one JSON line per file. Exits 1 if any did not arrive in time, 2 if a
FILE does not exist.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bridge.console import Console
from bridge.environments.pool import InvocationLog
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud
from bridge.poller import OutcomeListener

CODE_DIR = Path(__file__).resolve().parent
RESULT_WAIT_SECONDS = 60.0
RESULT_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Chain:
    """The names of the chain's resources, all starting with one prefix."""

    prefix: str = "chain"

    @property
    def count_function(self) -> str:
        return f"{self.prefix}-count"

    @property
    def store_function(self) -> str:
        return f"{self.prefix}-store"

    @property
    def uploads_bucket(self) -> str:
        return f"{self.prefix}-uploads"

    @property
    def results_bucket(self) -> str:
        return f"{self.prefix}-results"

    @property
    def queue(self) -> str:
        return f"{self.prefix}-counts"


def run_chain(
    cloud: LocalCloud,
    log: InvocationLog,
    files: dict[str, bytes],
    chain: Chain = Chain(),
    on_outcome: OutcomeListener | None = None,
) -> dict[str, Any]:
    """Upload the files and return, per key, the counts stored (None if late)."""
    deploy(cloud, chain)
    s3 = cloud.clients.client("s3")
    with lab_for(cloud, log, chain, on_outcome):
        for key, body in files.items():
            s3.put_object(Bucket=chain.uploads_bucket, Key=key, Body=body)
        deadline = time.monotonic() + RESULT_WAIT_SECONDS
        return {key: _wait_for_counts(s3, chain, key, deadline) for key in files}


def deploy(cloud: LocalCloud, chain: Chain) -> None:
    """Create the buckets, the queue and both functions, and connect them."""
    s3 = cloud.clients.client("s3")
    sqs = cloud.clients.client("sqs")
    s3.create_bucket(Bucket=chain.uploads_bucket)
    s3.create_bucket(Bucket=chain.results_bucket)
    queue_url = sqs.create_queue(QueueName=chain.queue)["QueueUrl"]
    cloud.create_function(
        chain.count_function, timeout_seconds=10, environment={"QUEUE_URL": queue_url}
    )
    cloud.create_function(
        chain.store_function,
        timeout_seconds=10,
        environment={"RESULTS_BUCKET": chain.results_bucket},
    )
    cloud.connect_bucket(chain.uploads_bucket, chain.count_function)
    cloud.connect_queue(chain.queue, chain.store_function)


def lab_for(
    cloud: LocalCloud,
    log: InvocationLog,
    chain: Chain,
    on_outcome: OutcomeListener | None = None,
) -> Lab:
    """A lab serving both functions of the chain from this folder's code."""
    functions = [
        FunctionSettings(chain.count_function, "count.handler", CODE_DIR),
        FunctionSettings(chain.store_function, "store.handler", CODE_DIR),
    ]
    return Lab(
        cloud.clients.client("sqs"),
        cloud.queues,
        functions,
        log,
        endpoint_url=cloud.endpoint_url,
        on_outcome=on_outcome,
    )


def _wait_for_counts(s3: Any, chain: Chain, key: str, deadline: float) -> Any:
    while True:
        try:
            stored = s3.get_object(
                Bucket=chain.results_bucket, Key=f"counts/{key}.json"
            )
            return json.loads(stored["Body"].read())
        except ClientError:
            if time.monotonic() > deadline:
                return None
            time.sleep(RESULT_POLL_SECONDS)


def main(arguments: list[str]) -> int:
    paths = [Path(argument) for argument in arguments] or [CODE_DIR / "README.md"]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"run_local: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    # Each file is uploaded under the path it was given by, so two files of
    # the same name in different folders stay apart.
    files = {
        path.as_posix().lstrip("/") if arguments else path.name: path.read_bytes()
        for path in paths
    }
    # The console names each event's source and mode once the lab reports
    # the outcome.
    console = Console(await_outcomes=True)
    console.note("starting the local cloud (moto's server) and the mless stack")
    with LocalCloud() as cloud:
        results = run_chain(cloud, console, files, on_outcome=console.on_outcome)
    for key, counts in results.items():
        print(json.dumps(counts) if counts else f"{key}: no counts arrived")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
