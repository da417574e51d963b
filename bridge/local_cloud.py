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

import json
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from types import TracebackType
from typing import Any

from bridge.aws import Clients
from bridge.lambda_service import LambdaService
from bridge.packaging import build_proxy_zip, code_key
from bridge.poller import Queues
from bridge.stack import StackOutputs, deploy_stack, ensure_code_bucket

logger = logging.getLogger(__name__)

LOCAL_REGION = "us-east-1"
# moto accepts any credentials; these are the ones its documentation uses.
LOCAL_CREDENTIALS = ("testing", "testing")
SERVER_START_SECONDS = 30.0
NOTIFICATION_WAIT_SECONDS = 1


class MotoServer:
    """moto's server in a child process, bound to 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.port = _free_port()
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
        )

    def create_function(
        self,
        name: str,
        *,
        timeout_seconds: int = 3,
        memory_mb: int = 128,
        environment: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Deploy a function whose code is the stack's proxy, as attaching does."""
        lambda_client = self.clients.client("lambda")
        proxy = lambda_client.get_function_configuration(
            FunctionName=self.stack.proxy_function_name
        )
        variables = dict(proxy.get("Environment", {}).get("Variables", {}))
        variables.update(environment or {})
        return lambda_client.create_function(  # type: ignore[no-any-return]
            FunctionName=name,
            Runtime=proxy["Runtime"],
            Role=proxy["Role"],
            Handler=proxy["Handler"],
            Code={"S3Bucket": self.code_bucket, "S3Key": self.code_key},
            Timeout=timeout_seconds,
            MemorySize=memory_mb,
            Environment={"Variables": variables},
        )

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


def _free_port() -> int:
    # NOTE: the port is free when asked and taken by moto a moment later;
    # another process could take it in between, which start-up then reports.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
