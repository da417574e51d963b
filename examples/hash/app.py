"""Write the SHA-1 of every object uploaded to a bucket next to it, as KEY.sha1.

Triggered by S3 ObjectCreated notifications. Writing KEY.sha1 triggers the
function again; it recognises its own output by the extension and stops, so
the chain ends after one round.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse

import boto3

HASH_SUFFIX = ".sha1"

# A logger of its own at INFO: Lambda leaves the root logger at WARNING, so
# boto3's own INFO lines stay out of the log.
logger = logging.getLogger("hash")
logger.setLevel(logging.INFO)

# Created once per execution environment and reused while it is warm.
s3 = boto3.client("s3")


def handler(event, context):
    written = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        # S3 sends keys URL-encoded, with spaces as '+'.
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        if key.endswith(HASH_SUFFIX):
            logger.info("s3://%s/%s is a hash this function wrote; done", bucket, key)
            continue
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        digest = hashlib.sha1(body).hexdigest()
        s3.put_object(
            Bucket=bucket,
            Key=key + HASH_SUFFIX,
            Body=digest.encode("ascii"),
            ContentType="text/plain",
        )
        logger.info("s3://%s/%s: %d bytes, sha1 %s", bucket, key, len(body), digest)
        written.append({"key": key + HASH_SUFFIX, "sha1": digest})
    return {"written": written}
