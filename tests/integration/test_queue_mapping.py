"""The local cloud's stand-in for an SQS event source mapping (`connect_queue`)."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from bridge.errors import ConfigurationError

HANDLER = textwrap.dedent(
    """
    import json, os

    def keep(event, context):
        folder = os.environ["KEEP_IN"]
        attempt = len(os.listdir(folder)) + 1
        with open(os.path.join(folder, f"{attempt}.json"), "w") as kept:
            json.dump(event, kept)
        if attempt <= int(os.environ.get("FAIL_TIMES", "0")):
            raise RuntimeError(f"failing attempt {attempt} on purpose")
    """
)
WAIT_SECONDS = 20.0


def _kept(folder: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(list(folder.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return [json.loads((folder / f"{n}.json").read_text()) for n in range(1, count + 1)]


@pytest.fixture
def queue_function(local_cloud, deployed_function, tmp_path):
    """A function that keeps each event it gets in a folder; and its queue."""

    def make(fail_times: int = 0, visibility_seconds: int = 30) -> tuple[str, Path]:
        code_dir = tmp_path / "code"
        code_dir.mkdir()
        (code_dir / "keeper.py").write_text(HANDLER)
        kept = tmp_path / "kept"
        kept.mkdir()
        name = deployed_function(
            "keeper.keep",
            code_dir=code_dir,
            environment={"KEEP_IN": str(kept), "FAIL_TIMES": str(fail_times)},
        )
        queue = f"mapped-{uuid.uuid4().hex[:12]}"
        sqs = local_cloud.clients.client("sqs")
        url = sqs.create_queue(
            QueueName=queue,
            Attributes={"VisibilityTimeout": str(visibility_seconds)},
        )["QueueUrl"]
        local_cloud.connect_queue(queue, name)
        return url, kept

    return make


def test_a_queues_messages_reach_the_function_as_lambdas_sqs_event(
    local_cloud, queue_function
):
    url, kept = queue_function()
    sqs = local_cloud.clients.client("sqs")

    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="resize cat.png",
        MessageAttributes={
            "size": {"DataType": "Number", "StringValue": "128"},
            "thumb": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        },
    )

    (event,) = _kept(kept, 1)
    (record,) = event["Records"]
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == "resize cat.png"
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":" + url.rsplit("/", 1)[1])
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["size"] == {
        "stringValue": "128",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Number",
    }
    assert record["messageAttributes"]["thumb"]["binaryValue"] == "AP8="


def test_a_failed_batch_comes_back_after_the_visibility_timeout(
    local_cloud, queue_function
):
    url, kept = queue_function(fail_times=1, visibility_seconds=1)
    sqs = local_cloud.clients.client("sqs")

    sqs.send_message(QueueUrl=url, MessageBody="try me twice")

    first, second = _kept(kept, 2)
    assert first["Records"][0]["body"] == second["Records"][0]["body"]
    assert second["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    time.sleep(1.5)  # longer than the visibility timeout: nothing comes back
    assert len(list(kept.iterdir())) == 2


def test_a_batch_size_beyond_one_receive_is_refused(local_cloud):
    with pytest.raises(ConfigurationError, match="batch size"):
        local_cloud.connect_queue("any-queue", "any-function", batch_size=11)
