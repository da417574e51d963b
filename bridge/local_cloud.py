"""The local cloud: moto's server on loopback, the mless stack, and a Lambda stand-in.

It lets the whole path of an invocation run on a machine with no AWS account
and no Docker: the stack is deployed into moto by the same code that deploys
it into AWS, functions are created with the real proxy package, and the
stand-in (`lambda_service`) invokes them as Lambda would, including for S3
notifications, which moto delivers only to SQS queues: the local cloud
subscribes a queue of its own and turns each notification into an Event
invocation.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any

from botocore.exceptions import ClientError

from bridge.aws import LOCAL_REGION, Clients
from bridge.deploy import deploy_stack, ensure_code_bucket
from bridge.errors import AwsError, ConfigurationError
from bridge.lambda_service import LambdaService
from bridge.packaging import build_proxy_zip, code_key
from bridge.poller import Queues
from bridge.stack import StackOutputs

logger = logging.getLogger(__name__)

# moto accepts any credentials; these are the ones its documentation uses.
LOCAL_CREDENTIALS = ("testing", "testing")
SERVER_START_SECONDS = 30.0
NOTIFICATION_WAIT_SECONDS = 1
# How long a lab serving the local cloud long-polls: a stopping lab waits for
# its polls to end, and on loopback a short poll costs nothing.
LOCAL_POLL_WAIT_SECONDS = 1
# An SQS receive returns at most ten messages; Lambda's larger batches need a
# batching window, which the local cloud does not play.
MAX_QUEUE_BATCH_SIZE = 10


class MotoServer:
    """moto's server in a child process, bound to 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("moto's server exited while starting")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"moto's server did not start within {SERVER_START_SECONDS} s"
        )

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class LocalCloud:
    """A running local cloud with the mless stack deployed in it."""

    def __init__(self, stack_name: str = "mless", endpoint_url: str | None = None):
        self._server = None if endpoint_url else MotoServer()
        self.endpoint_url = endpoint_url or self._server.endpoint_url  # type: ignore[union-attr]
        self.clients = Clients(
            region=LOCAL_REGION,
            endpoint_url=self.endpoint_url,
            credentials=LOCAL_CREDENTIALS,
        )
        cloudformation = self.clients.client("cloudformation")
        s3, sts = self.clients.client("s3"), self.clients.client("sts")
        self.stack: StackOutputs = deploy_stack(
            cloudformation,
            s3,
            sts,
            stack_name=stack_name,
            # moto settles a stack at once; no need to poll every few seconds.
            sleep=lambda seconds: time.sleep(min(seconds, 0.1)),
            lambda_client=self.clients.client("lambda"),
        )
        self.code_bucket = ensure_code_bucket(s3, sts, LOCAL_REGION)
        self.code_key = code_key(build_proxy_zip())
        self.lambda_service = LambdaService(
            self.clients, self.code_bucket, self.endpoint_url
        )
        self._stopping = threading.Event()

    @property
    def queues(self) -> Queues:
        """The stack's queues, as the lab's poller needs them."""
        return Queues(
            request_queue_url=self.stack.request_queue_url,
            dead_letter_queue_url=self.stack.dead_letter_queue_url,
            reply_queue_prefix=self.stack.reply_queue_prefix,
            payload_bucket=self.stack.payload_bucket_name,
        )

    def create_function(
        self,
        name: str,
        *,
        timeout_seconds: int = 3,
        memory_mb: int = 128,
        environment: dict[str, str] | None = None,
        mode: str | None = None,
        code_dir: Path | None = None,
        original_handler: str | None = None,
        handler: str | None = None,
    ) -> dict[str, Any]:
        """Deploy a function whose code is the stack's proxy, as attaching does.

        `mode` sets its MLESS_MODE (the stack's by default). With `code_dir`
        its package holds that folder's code beside the proxy, as an attached
        function has its own code and the proxy's layer: `original_handler`
        names its own handler for mirror mode (MLESS_ORIGINAL_HANDLER), and
        `handler` makes Lambda call one of its own instead of the proxy's
        (library mode).
        """
        lambda_client = self.clients.client("lambda")
        proxy = lambda_client.get_function_configuration(
            FunctionName=self.stack.proxy_function_name
        )
        variables = dict(proxy.get("Environment", {}).get("Variables", {}))
        if mode is not None:
            variables["MLESS_MODE"] = mode
        if original_handler is not None:
            variables["MLESS_ORIGINAL_HANDLER"] = original_handler
        variables.update(environment or {})
        key = self.code_key if code_dir is None else self._upload_with_proxy(code_dir)
        return lambda_client.create_function(  # type: ignore[no-any-return]
            FunctionName=name,
            Runtime=proxy["Runtime"],
            Role=proxy["Role"],
            Handler=handler or proxy["Handler"],
            Code={"S3Bucket": self.code_bucket, "S3Key": key},
            Timeout=timeout_seconds,
            MemorySize=memory_mb,
            Environment={"Variables": variables},
        )

    def _upload_with_proxy(self, code_dir: Path) -> str:
        """Upload a package of the proxy and a folder's code; return its key."""
        package = _package_with_proxy(code_dir)
        digest = hashlib.sha256(package).hexdigest()[:16]
        key = f"mless/function-{digest}.zip"
        self.clients.client("s3").put_object(
            Bucket=self.code_bucket, Key=key, Body=package
        )
        return key

    def connect_bucket(self, bucket: str, function_name: str) -> None:
        """Deliver the bucket's ObjectCreated notifications to a function."""
        sqs = self.clients.client("sqs")
        queue_url = sqs.create_queue(QueueName=f"local-cloud-s3-{bucket}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.clients.client("s3").put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
                ]
            },
        )
        threading.Thread(
            target=self._deliver_notifications,
            args=(queue_url, function_name),
            name=f"local-cloud-s3-{bucket}",
            daemon=True,
        ).start()

    def _deliver_notifications(self, queue_url: str, function_name: str) -> None:
        sqs = self.clients.client("sqs")
        while not self._stopping.is_set():
            try:
                response = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=NOTIFICATION_WAIT_SECONDS,
                )
            except Exception:
                if not self._stopping.is_set():
                    logger.exception("Reading S3 notifications failed")
                    time.sleep(1)
                continue
            for message in response.get("Messages", []):
                event = json.loads(message["Body"])
                # S3 announces a new notification target with a test event,
                # which Lambda never passes to a function.
                if event.get("Event") != "s3:TestEvent":
                    self.lambda_service.invoke(
                        function_name, message["Body"].encode(), "Event"
                    )
                sqs.delete_message(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def connect_queue(
        self, queue_name: str, function_name: str, batch_size: int = 10
    ) -> None:
        """Invoke a function with batches of a queue's messages, as a mapping does.

        Lambda's event source mapping plays this part in AWS (moto cannot run
        one): each batch is one synchronous invocation with an SQS event. The
        batch is deleted when the function succeeds; otherwise its messages
        come back after the queue's visibility timeout and are tried again.

        NOTE: partial batch responses (ReportBatchItemFailures) are not
        honoured: a failed invocation returns the whole batch to the queue.
        """
        if not 1 <= batch_size <= MAX_QUEUE_BATCH_SIZE:
            raise ConfigurationError(
                f"The batch size for queue {queue_name} must be 1 to "
                f"{MAX_QUEUE_BATCH_SIZE} on the local cloud, not {batch_size}."
            )
        sqs = self.clients.client("sqs")
        try:
            queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        except ClientError as exc:
            raise AwsError.from_client_error(exc, f"queue {queue_name}") from exc
        threading.Thread(
            target=self._deliver_batches,
            args=(queue_url, queue_arn, function_name, batch_size),
            name=f"local-cloud-sqs-{queue_name}",
            daemon=True,
        ).start()

    def _deliver_batches(
        self, queue_url: str, queue_arn: str, function_name: str, batch_size: int
    ) -> None:
        sqs = self.clients.client("sqs")
        while not self._stopping.is_set():
            try:
                response = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=batch_size,
                    WaitTimeSeconds=NOTIFICATION_WAIT_SECONDS,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                messages = response.get("Messages", [])
                if messages:
                    self._invoke_with_batch(
                        sqs, queue_url, queue_arn, function_name, messages
                    )
            except Exception:
                if not self._stopping.is_set():
                    logger.exception("Delivering messages of %s failed", queue_arn)
                    time.sleep(1)

    def _invoke_with_batch(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function_name: str,
        messages: list[dict[str, Any]],
    ) -> None:
        event = _sqs_event(messages, queue_arn, self.clients.region)
        result = self.lambda_service.invoke(function_name, json.dumps(event).encode())
        if result.function_error is not None:
            logger.warning(
                "%s failed on a batch of %d messages from %s; they return to "
                "the queue after its visibility timeout",
                function_name,
                len(messages),
                queue_arn,
            )
            return
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ],
        )

    def close(self) -> None:
        self._stopping.set()
        self.lambda_service.close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _sqs_event(
    messages: list[dict[str, Any]], queue_arn: str, region: str
) -> dict[str, Any]:
    """The event Lambda hands a function for a batch of SQS messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {
                    name: _sqs_event_attribute(value)
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def _sqs_event_attribute(value: dict[str, Any]) -> dict[str, Any]:
    # The event spells attribute fields in camel case and carries binary
    # values base64-encoded.
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def _package_with_proxy(code_dir: Path) -> bytes:
    """A deployment package: the proxy's files, then the folder's own."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        with zipfile.ZipFile(io.BytesIO(build_proxy_zip())) as proxy:
            for item in proxy.infolist():
                package.writestr(item, proxy.read(item))
        for path in sorted(code_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                package.write(path, path.relative_to(code_dir).as_posix())
    return buffer.getvalue()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    # NOTE: the port is free when asked and taken by moto a moment later;
    # another process could take it in between, which start-up then reports.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
