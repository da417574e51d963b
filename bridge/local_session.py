"""`mless local`: a local cloud kept running for other programs to use.

It starts moto's server, deploys the mless stack into it, creates the named
functions with the proxy as their code, connects buckets' notifications to
them, and serves everything through one gateway endpoint until stopped. A
lab started with `mless run --endpoint-url ENDPOINT` then serves those
functions, and the AWS CLI or boto3 pointed at the same endpoint triggers
them: `aws --endpoint-url ENDPOINT s3 cp file s3://BUCKET/`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botocore.exceptions import ClientError

from bridge.errors import ConfigurationError
from bridge.local_cloud import LocalCloud
from bridge.local_gateway import LocalGateway

DEFAULT_PORT = 4570


@dataclass(frozen=True)
class LocalFunction:
    """A function to create on the local cloud, and the bucket that triggers it."""

    name: str
    timeout_seconds: int = 3
    memory_mb: int = 128
    bucket: str | None = None


def run_local_cloud(
    functions: Sequence[LocalFunction],
    say: Callable[[str], None],
    *,
    port: int = DEFAULT_PORT,
    stack_name: str = "mless",
    stop: threading.Event | None = None,
) -> None:
    """Serve a local cloud with these functions until `stop` is set (or forever)."""
    stop = stop or threading.Event()
    with LocalCloud(stack_name) as cloud:
        try:
            gateway = LocalGateway(cloud.lambda_service, cloud.endpoint_url, port)
        except OSError as exc:
            raise ConfigurationError(
                f"The local cloud cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
                "choose another --port."
            ) from exc
        try:
            for function in functions:
                _create(cloud, function, say)
            say(f"local cloud ready at {gateway.endpoint_url} (stack {stack_name!r})")
            say(
                "serve it with: mless run --endpoint-url "
                f"{gateway.endpoint_url} --stack {stack_name} ..."
            )
            stop.wait()
        finally:
            gateway.close()


def _create(
    cloud: LocalCloud, function: LocalFunction, say: Callable[[str], None]
) -> None:
    cloud.create_function(
        function.name,
        timeout_seconds=function.timeout_seconds,
        memory_mb=function.memory_mb,
    )
    say(f"function {function.name} created, its code is the mless proxy")
    if function.bucket is None:
        return
    s3 = cloud.clients.client("s3")
    try:
        s3.create_bucket(Bucket=function.bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    cloud.connect_bucket(function.bucket, function.name)
    say(f"s3://{function.bucket} notifies {function.name} of every new object")
