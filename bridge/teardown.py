"""Tearing the mless stack down, for `mless destroy`.

CloudFormation deletes what the template made but nothing made since: the
objects in the payload bucket (which must go first, or the bucket cannot),
the reply queues the proxies created, and the versions of the proxy's layer.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bridge.errors import AwsError, StackNotFoundError, calling_aws, error_code
from bridge.proxy_layer import delete_proxy_layer, proxy_layer_name
from bridge.stack import current_parameters, describe_stack
from bridge.stack_events import EventCallback, Sleep, latest_event_ids, wait_for_stack

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from mypy_boto3_sqs import SQSClient

# How SQS says a queue is gone, in its JSON and its older query protocol.
_QUEUE_GONE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def destroy_stack(
    cloudformation: CloudFormationClient,
    sqs: SQSClient,
    s3: S3Client,
    *,
    stack_name: str,
    on_event: EventCallback | None = None,
    sleep: Sleep = time.sleep,
    lambda_client: LambdaClient | None = None,
) -> list[str]:
    """Delete the stack and its proxies' reply queues; return the queues' URLs.

    The payload bucket is emptied first, since CloudFormation cannot delete a
    bucket that holds objects. Only the stack's parameters are needed, so a
    stack left without outputs by a failed update is destroyed the same way.
    With `lambda_client`, the versions of the proxy's layer go too.
    """
    stack = describe_stack(cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name, cloudformation.meta.region_name)
    stack_id = stack["StackId"]
    bucket = _physical_id(cloudformation, stack_id, "PayloadBucket")
    if bucket is not None:
        _empty_bucket(s3, bucket)

    seen = latest_event_ids(cloudformation, stack_id)
    with calling_aws(f"stack {stack_name}"):
        cloudformation.delete_stack(StackName=stack_id)
    wait_for_stack(cloudformation, stack_id, "DeleteStack", seen, on_event, sleep)

    # Derived as the template's ReplyQueuePrefix output is, from the parameter
    # that every stack has, even one without outputs.
    name_prefix = current_parameters(stack)["NamePrefix"]
    if lambda_client is not None:
        delete_proxy_layer(lambda_client, proxy_layer_name(name_prefix))
    return _delete_reply_queues(sqs, f"{name_prefix}-reply-")


def _physical_id(
    cloudformation: CloudFormationClient, stack_id: str, logical_id: str
) -> str | None:
    with calling_aws(f"stack {stack_id}"):
        resources = cloudformation.describe_stack_resources(StackName=stack_id)
    for resource in resources["StackResources"]:
        # moto lists the resources it cannot create without their ids.
        if resource.get("LogicalResourceId") == logical_id:
            return resource.get("PhysicalResourceId")
    return None


def _empty_bucket(s3: S3Client, bucket: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    try:
        # A page holds at most 1,000 keys, as many as one DeleteObjects takes.
        for page in paginator.paginate(Bucket=bucket):
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", [])
            ]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise AwsError.from_client_error(exc, f"bucket {bucket}") from exc


def _delete_reply_queues(sqs: SQSClient, prefix: str) -> list[str]:
    # Only <prefix><hex> is a reply queue: with a NamePrefix that itself ends
    # in "-reply", another stack's queues would share the text prefix.
    pattern = re.compile(re.escape(prefix) + "[0-9A-Fa-f]+")
    paginator = sqs.get_paginator("list_queues")
    with calling_aws(f"queues {prefix}*"):
        urls = [
            url
            for page in paginator.paginate(QueueNamePrefix=prefix)
            for url in page.get("QueueUrls", [])
        ]
    deleted = []
    for url in urls:
        if not pattern.fullmatch(url.rsplit("/", 1)[-1]):
            continue
        try:
            sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if error_code(exc) not in _QUEUE_GONE:
                raise AwsError.from_client_error(exc, f"queue {url}") from exc
        deleted.append(url)
    return deleted
