"""`mless local` in the foreground, and a lab serving it from outside."""

from __future__ import annotations

import hashlib
import re
import threading
import time

from bridge.aws import Clients
from bridge.demo import EXAMPLE_DIR
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_session import LocalFunction, run_local_cloud
from bridge.poller import Queues
from bridge.stack import read_stack_outputs


def _start(functions, said):
    stop = threading.Event()
    thread = threading.Thread(
        target=run_local_cloud,
        args=(functions, said.append),
        kwargs={"port": 0, "stop": stop},
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not any("ready at" in line for line in said):
        assert time.monotonic() < deadline, said
        time.sleep(0.1)
    endpoint = re.search(r"http://127\.0\.0\.1:\d+", "\n".join(said)).group()
    return endpoint, stop, thread


def test_an_upload_through_the_local_cloud_runs_the_handler_in_a_separate_lab(
    lab_log,
):
    said: list[str] = []
    function = LocalFunction("local-hash", timeout_seconds=10, bucket="local-uploads")
    endpoint, stop, thread = _start([function], said)
    try:
        clients = Clients(
            region="us-east-1", endpoint_url=endpoint, credentials=("testing", "x")
        )
        outputs = read_stack_outputs(clients.client("cloudformation"), "mless")
        queues = Queues(
            outputs.request_queue_url,
            outputs.dead_letter_queue_url,
            outputs.reply_queue_prefix,
        )
        settings = FunctionSettings("local-hash", "app.handler", EXAMPLE_DIR)
        sqs = clients.client("sqs")
        with Lab(
            sqs, queues, [settings], lab_log, endpoint_url=endpoint, poll_wait_seconds=1
        ):
            s3 = clients.client("s3")
            s3.put_object(Bucket="local-uploads", Key="hello.txt", Body=b"hello")
            digest = _wait_for(s3, "local-uploads", "hello.txt.sha1")
        assert digest == hashlib.sha1(b"hello").hexdigest()
    finally:
        stop.set()
        thread.join(30)


def _wait_for(s3, bucket, key, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.2)
    raise AssertionError(f"s3://{bucket}/{key} never appeared")
