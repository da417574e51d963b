"""First link of the chain: count the lines and words of each uploaded text.

Triggered by S3 ObjectCreated notifications on the uploads bucket. For each
new object it sends one message to the queue named by QUEUE_URL, holding the
object's bucket, key and counts; that queue triggers the second function,
store.py.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse

import boto3

logger = logging.getLogger("count")
logger.setLevel(logging.INFO)

# Created once per execution environment and reused while it is warm.
s3 = boto3.client("s3")
sqs = boto3.client("sqs")


def handler(event, context):
    queued = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        # S3 sends keys URL-encoded, with spaces as '+'.
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        counts = count(bucket, key, body)
        sqs.send_message(
            QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(counts)
        )
        logger.info(
            "s3://%s/%s: %d lines, %d words",
            bucket,
            key,
            counts["lines"],
            counts["words"],
        )
        queued.append(key)
    return {"queued": queued}


def count(bucket, key, body):
    text = body.decode("utf-8", errors="replace")
    return {
        "bucket": bucket,
        "key": key,
        "bytes": len(body),
        "lines": len(text.splitlines()),
        "words": len(text.split()),
    }
