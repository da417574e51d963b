"""Every example runs on the local cloud through the whole bridge, as its README says.

Each invocation goes from the Lambda stand-in through the deployed proxy,
the request queue and the lab's poller to the example's handler, and back.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@contextmanager
def serving(
    cloud: LocalCloud, log: Any, handler: str, code_dir: Path, **settings: Any
) -> Iterator[str]:
    """Deploy a proxy-backed function and serve it from a lab; yield its name."""
    name = f"example-{uuid.uuid4().hex[:12]}"
    cloud.create_function(name, timeout_seconds=10)
    function = FunctionSettings(name, handler, code_dir, **settings)
    sqs = cloud.clients.client("sqs")
    with Lab(
        sqs,
        cloud.queues,
        [function],
        log,
        endpoint_url=cloud.endpoint_url,
        poll_wait_seconds=1,
    ):
        yield name


def _event(example: str, name: str) -> bytes:
    return (EXAMPLES / example / "events" / name).read_bytes()


def _invoke(cloud: LocalCloud, name: str, event: bytes) -> Any:
    result = cloud.lambda_service.invoke(name, event)
    assert result.function_error is None, result.payload
    return json.loads(result.payload)


def test_http_api_example_answers_with_json(local_cloud, lab_log):
    with serving(local_cloud, lab_log, "app.handler", EXAMPLES / "http_api") as name:
        response = _invoke(local_cloud, name, _event("http_api", "get-hello.json"))

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert json.loads(response["body"]) == {"message": "Hello, Ada!"}


def test_http_api_example_answers_with_a_binary_body(local_cloud, lab_log):
    code_dir = EXAMPLES / "http_api"
    with serving(local_cloud, lab_log, "app.handler", code_dir) as name:
        badge = _invoke(local_cloud, name, _event("http_api", "get-badge.json"))
        echo = _invoke(local_cloud, name, _event("http_api", "post-echo-binary.json"))

    assert badge["isBase64Encoded"] is True
    assert badge["headers"]["content-type"] == "image/png"
    assert base64.b64decode(badge["body"]).startswith(PNG_SIGNATURE)
    assert echo["isBase64Encoded"] is True
    assert base64.b64decode(echo["body"]) == b"\x00\x01\xfe\xff\x80mle"


def test_chain_example_carries_each_upload_through_both_functions(local_cloud, lab_log):
    run_local = _load("chain/run_local.py")
    files = {
        "poem.txt": "The woods are lovely, dark and deep,\nBut I have promises.\n",
        "dir/empty.txt": "",
    }
    chain = run_local.Chain(prefix=f"chain-{uuid.uuid4().hex[:8]}")

    results = run_local.run_chain(
        local_cloud,
        lab_log,
        {key: text.encode() for key, text in files.items()},
        chain,
    )

    assert results["poem.txt"] == {
        "bucket": chain.uploads_bucket,
        "key": "poem.txt",
        "bytes": len(files["poem.txt"]),
        "lines": 2,
        "words": 11,
    }
    assert results["dir/empty.txt"]["words"] == 0


def test_chain_examples_sample_events_run_in_their_functions(local_cloud, lab_log):
    run_local = _load("chain/run_local.py")
    chain = run_local.Chain(prefix=f"chain-{uuid.uuid4().hex[:8]}")
    run_local.deploy(local_cloud, chain)
    s3 = local_cloud.clients.client("s3")
    # The sample S3 event names the default chain's bucket and this object.
    if "chain-uploads" not in _buckets(s3):
        s3.create_bucket(Bucket="chain-uploads")
    s3.put_object(Bucket="chain-uploads", Key="poems/the road.txt", Body=b"a b\nc\n")

    with run_local.lab_for(local_cloud, lab_log, chain):
        counted = _invoke(
            local_cloud, chain.count_function, _event("chain", "s3-put.json")
        )
        stored = _invoke(
            local_cloud, chain.store_function, _event("chain", "sqs-batch.json")
        )

    assert counted == {"queued": ["poems/the road.txt"]}
    assert stored is None
    written = s3.list_objects_v2(Bucket=chain.results_bucket, Prefix="counts/notes/")
    assert [item["Key"] for item in written["Contents"]] == [
        "counts/notes/todo.md.json"
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_example_runs_through_mless_invoke_as_its_readme_says():
    result = CliRunner().invoke(
        main,
        [
            "invoke",
            "index.handler",
            "--code-dir",
            str(EXAMPLES / "node"),
            "--runtime",
            "nodejs20.x",
            "--event",
            str(EXAMPLES / "node" / "events" / "greet.json"),
        ],
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["greeting"] == "Hello, Ada!"
    assert payload["runtime"] == "AWS_Lambda_nodejs20.x"
    assert payload["timeLeft"] is True
    assert "INFO\tgreeting Ada (invocation 1 of this environment)" in result.stderr


def test_hash_examples_sample_event_runs(local_cloud, lab_log):
    with serving(local_cloud, lab_log, "app.handler", EXAMPLES / "hash") as name:
        # The sample names a .sha1 object, which the handler leaves alone.
        response = _invoke(local_cloud, name, _event("hash", "s3-put.json"))

    assert response == {"written": []}


def _load(relative: str) -> ModuleType:
    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _buckets(s3: Any) -> set[str]:
    return {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
