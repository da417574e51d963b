"""`mless invoke`: run events through the whole bridge on the local cloud.

Each event takes the full path of a real invocation: the Lambda stand-in
invokes the deployed proxy, which sends the request over SQS; the lab's
poller runs the handler in a warm execution environment and replies; the
proxy returns the payload, which is what gets printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bridge.environments.pool import InvocationLog
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.lambda_service import InvokeResult
from bridge.local_cloud import LOCAL_POLL_WAIT_SECONDS, LocalCloud


@dataclass(frozen=True)
class FunctionDeployment:
    """The deployed side of a function: what Lambda's configuration holds."""

    timeout_seconds: int = 3
    memory_mb: int = 128
    environment: tuple[tuple[str, str], ...] = ()


def invoke_events(
    settings: FunctionSettings,
    deployment: FunctionDeployment,
    events: Sequence[bytes],
    log: InvocationLog,
    concurrency: int = 1,
) -> list[InvokeResult]:
    """Invoke the function once per event, in order, up to `concurrency` at once."""
    with LocalCloud() as cloud:
        cloud.create_function(
            settings.name,
            timeout_seconds=deployment.timeout_seconds,
            memory_mb=deployment.memory_mb,
            environment=dict(deployment.environment),
        )
        sqs = cloud.clients.client("sqs")
        # No hot reload: the events run once, and watching the code directory
        # would also report files the command itself writes there.
        lab = Lab(
            sqs,
            cloud.queues,
            [settings],
            log,
            endpoint_url=cloud.endpoint_url,
            reload=False,
            # On the local cloud short polls cost nothing, and a lab stopping
            # needs no wakes for them: the command ends as soon as it is done.
            poll_wait_seconds=LOCAL_POLL_WAIT_SECONDS,
        )
        with lab:
            with ThreadPoolExecutor(concurrency) as invokers:
                return list(
                    invokers.map(
                        lambda event: cloud.lambda_service.invoke(settings.name, event),
                        events,
                    )
                )
