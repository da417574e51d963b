"""What `mless status` reads of a deployed stack besides its outputs.

The approximate depths of its queues, whether a lab serves it (as its proxies
see the lab's heartbeat), and the mode each function's proxy runs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bridge.errors import calling_aws
from bridge.stack import StackOutputs
from lambda_proxy.presence import LabPresence, Mode, Sighting

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class QueueDepths:
    """How many messages wait in the stack's queues (SQS's approximate counts)."""

    requests_waiting: int
    requests_in_flight: int
    dead_letters: int


def read_queue_depths(sqs: SQSClient, outputs: StackOutputs) -> QueueDepths:
    """Return the approximate message counts of the request and dead-letter queues."""
    requests = _queue_counts(sqs, outputs.request_queue_url)
    dead = _queue_counts(sqs, outputs.dead_letter_queue_url)
    return QueueDepths(
        requests_waiting=requests.get("ApproximateNumberOfMessages", 0),
        requests_in_flight=requests.get("ApproximateNumberOfMessagesNotVisible", 0),
        dead_letters=dead.get("ApproximateNumberOfMessages", 0),
    )


def read_lab_presence(s3: S3Client, outputs: StackOutputs) -> Sighting:
    """Whether a lab serves the stack, as its proxies read the lab's heartbeat."""
    return LabPresence(outputs.payload_bucket_name, s3).read()


def read_function_mode(lambda_client: LambdaClient, function_name: str) -> str | None:
    """The mode a function's proxy runs in (MLESS_MODE); None if it cannot be read."""
    try:
        configuration = lambda_client.get_function_configuration(
            FunctionName=function_name
        )
    except ClientError:
        return None
    variables = configuration.get("Environment", {}).get("Variables", {})
    return variables.get("MLESS_MODE") or Mode.AUTO.value


def _queue_counts(sqs: SQSClient, queue_url: str) -> dict[str, int]:
    with calling_aws(f"queue {queue_url}"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
    return {name: int(value) for name, value in attributes.items()}
