"""The offline demo: the S3 hash chain, end to end on the local cloud.

Real files are uploaded to a bucket of the local cloud; S3 notifies the
function, whose proxy forwards each invocation to the lab, where the example
handler hashes the object and writes KEY.sha1, which notifies the function
again, and the handler ends the chain. The demo then reads every .sha1 back
and checks it against hashlib on the original bytes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bridge.environments.pool import InvocationLog
from bridge.environments.process import Outcome
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LOCAL_POLL_WAIT_SECONDS, LocalCloud
from lambda_proxy import wire

FUNCTION_NAME = "mless-hash"
BUCKET = "mless-hash-demo"
HASH_SUFFIX = ".sha1"
CHAIN_SECONDS = 60.0
EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "hash"


@dataclass(frozen=True)
class Check:
    """One uploaded object and whether its .sha1 matched."""

    key: str
    expected: str
    found: str | None

    @property
    def ok(self) -> bool:
        return self.expected == self.found


def demo_files() -> dict[str, bytes]:
    """The objects to upload: real files, a binary one and awkward key names."""
    root = EXAMPLE_DIR.parent.parent
    files = {
        "README.md": (root / "README.md").read_bytes(),
        "examples/hash/app.py": (EXAMPLE_DIR / "app.py").read_bytes(),
        "data/every-byte.bin": bytes(range(256)) * 64,
        "notes/a key with spaces & ümlauts.txt": "grüße 👋\n".encode(),
    }
    return files


class _Counter:
    def __init__(self) -> None:
        self.finished = 0
        self.failed: list[Outcome] = []
        self._changed = threading.Condition()

    def __call__(self, request: wire.Request, outcome: Outcome) -> None:
        with self._changed:
            self.finished += 1
            if outcome.error is not None:
                self.failed.append(outcome)
            self._changed.notify_all()

    def wait_for(self, count: int, seconds: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.finished >= count, seconds)


def run_demo(
    log: InvocationLog, say: Callable[[str], None], cloud: LocalCloud | None = None
) -> list[Check]:
    """Run the hash chain and return one check per file.

    The chain runs on `cloud`, or on a fresh local cloud started for it.
    """
    if cloud is None:
        say("starting the local cloud (moto's server) and deploying the mless stack")
        with LocalCloud() as fresh:
            return _run_chain(fresh, log, say)
    return _run_chain(cloud, log, say)


def _run_chain(
    cloud: LocalCloud, log: InvocationLog, say: Callable[[str], None]
) -> list[Check]:
    files = demo_files()
    s3 = cloud.clients.client("s3")
    cloud.create_function(FUNCTION_NAME, timeout_seconds=10)
    s3.create_bucket(Bucket=BUCKET)
    cloud.connect_bucket(BUCKET, FUNCTION_NAME)
    settings = FunctionSettings(FUNCTION_NAME, "app.handler", EXAMPLE_DIR)
    counter = _Counter()
    sqs = cloud.clients.client("sqs")
    lab = Lab(  # no hot reload: the demo's code does not change while it runs
        sqs,
        cloud.queues,
        [settings],
        log,
        endpoint_url=cloud.endpoint_url,
        on_outcome=counter,
        reload=False,
        poll_wait_seconds=LOCAL_POLL_WAIT_SECONDS,
    )
    with lab:
        say(f"uploading {len(files)} files to s3://{BUCKET}")
        started = time.monotonic()
        for key, body in files.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        # Each upload runs the handler twice: once on the file, once on the
        # .sha1 it wrote, which ends the chain.
        expected = 2 * len(files)
        complete = counter.wait_for(expected, CHAIN_SECONDS)
        elapsed = time.monotonic() - started
        say(
            f"{counter.finished} invocations ran in the lab in {elapsed:.1f} s"
            + ("" if complete else f" (expected {expected})")
        )
        return [_check(s3, key, body) for key, body in files.items()]


def _check(s3: Any, key: str, body: bytes) -> Check:
    expected = hashlib.sha1(body).hexdigest()
    try:
        found = s3.get_object(Bucket=BUCKET, Key=key + HASH_SUFFIX)["Body"].read()
    except ClientError:
        return Check(key, expected, None)
    return Check(key, expected, found.decode("ascii", errors="replace"))
