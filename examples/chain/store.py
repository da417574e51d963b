"""Second link of the chain: keep each count the queue delivers, as JSON in S3.

Triggered by the queue that count.py writes to, with batches of up to ten
messages. Each count becomes counts/KEY.json in the bucket named by
RESULTS_BUCKET. An error fails the whole batch, and the queue delivers it
again after its visibility timeout; writing the same object twice does no
harm, so a retried batch is safe.
"""

from __future__ import annotations

import json
import logging
import os

import boto3

logger = logging.getLogger("store")
logger.setLevel(logging.INFO)

s3 = boto3.client("s3")


def handler(event, context):
    bucket = os.environ["RESULTS_BUCKET"]
    for record in event["Records"]:
        counts = json.loads(record["body"])
        key = f"counts/{counts['key']}.json"
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(counts, ensure_ascii=False).encode("utf-8"),
            ContentType="application/json",
        )
        logger.info("message %s -> s3://%s/%s", record["messageId"], bucket, key)
    # Lambda ignores what a function triggered by SQS returns (unless it
    # reports partial batch failures, which this one does not).
