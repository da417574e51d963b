"""The lab listens on nothing, its queues refuse plain HTTP, and credentials never leak.

The leak test runs the lab in a process of its own with DEBUG logging for
every logger (as `mless --debug run` would), its home, temporary and data
directories inside the test's, and searches everything it printed or wrote
for the credentials the function's role received.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_process import LabProcess, kill_leftover_environments, lab_config
from reliability_support import Executions, deploy, wait_until

# /proc/net/tcp's state for a listening socket.
TCP_LISTEN = "0A"


def serving(local_cloud: Any, settings: Any, **options: Any) -> dict[str, Any]:
    function = {
        "name": settings.name,
        "handler": settings.handler,
        "code_dir": str(settings.code_dir),
        "concurrency": settings.concurrency,
    }
    return lab_config(local_cloud, [function], **options)


@pytest.fixture
def lab_processes() -> Iterator[list[LabProcess]]:
    started: list[LabProcess] = []
    yield started
    for lab in started:
        lab.close()


def family(pid: int) -> set[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(match[1])
    return inodes


def listening_inodes() -> set[str]:
    """Inodes of every TCP socket listening and every UDP socket bound."""
    found = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if table.startswith("udp") or fields[3] == TCP_LISTEN:
                found.add(fields[9])
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_the_lab_and_its_execution_environments_listen_on_no_port(
    local_cloud, tmp_path, lab_processes
):
    executions = Executions(tmp_path)
    settings = deploy(
        local_cloud, "reliability.record", environment=executions.environment
    )
    lab = LabProcess(serving(local_cloud, settings))
    lab_processes.append(lab)
    try:
        result = local_cloud.lambda_service.invoke(settings.name, b'{"id": "ports"}')
        assert result.function_error is None, result.payload
        processes = family(lab.pid)
        sockets = set().union(*(socket_inodes(pid) for pid in processes))
    finally:
        kill_leftover_environments({int(line[2]) for line in executions.lines()})

    assert len(processes) >= 2  # the lab and the environment that ran the handler
    assert sockets  # it does talk to SQS
    assert sockets & listening_inodes() == set()


def test_reply_queues_are_encrypted_and_refuse_plain_http(
    deployed_function, local_cloud
):
    name = deployed_function("echo.echo")
    sqs = local_cloud.clients.client("sqs")

    local_cloud.lambda_service.invoke(name, b"{}")

    prefix = local_cloud.queues.reply_queue_prefix
    urls = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    own = [
        url
        for url in urls
        if sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get("mless:function")
        == name
    ]
    assert len(own) == 1
    attributes = sqs.get_queue_attributes(QueueUrl=own[0], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["SqsManagedSseEnabled"] == "true"
    statement = json.loads(attributes["Policy"])["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "sqs:*"
    assert statement["Resource"] == attributes["QueueArn"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for stack_queue in (
        local_cloud.queues.request_queue_url,
        local_cloud.queues.dead_letter_queue_url,
    ):
        stack_attributes = sqs.get_queue_attributes(
            QueueUrl=stack_queue, AttributeNames=["SqsManagedSseEnabled"]
        )["Attributes"]
        assert stack_attributes["SqsManagedSseEnabled"] == "true"


def files_under(directory: Path) -> dict[Path, bytes]:
    return {
        path: path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


def test_credentials_appear_in_no_log_output_error_or_file(
    local_cloud, tmp_path, lab_processes, caplog
):
    caplog.set_level(logging.DEBUG)
    captured = tmp_path / "captured-credentials"
    home = tmp_path / "lab-home"
    home.mkdir()
    directories = {
        "HOME": home,
        "TMPDIR": home / "tmp",
        "MLESS_HOME": home / ".mless",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_CONFIG_HOME": home / ".config",
    }
    for directory in directories.values():
        directory.mkdir(parents=True, exist_ok=True)
    settings = deploy(
        local_cloud,
        "reliability.capture_credentials",
        timeout_seconds=10,
        environment={"CAPTURE_FILE": str(captured)},
    )
    lab = LabProcess(
        serving(local_cloud, settings, log_level="DEBUG"),
        environment={name: str(path) for name, path in directories.items()},
        cwd=home,
    )
    lab_processes.append(lab)
    sqs = local_cloud.clients.client("sqs")
    events = [
        {"n": 1},
        {"n": 2, "fail": True},
        # Over one SQS message, so the request travels through S3.
        {"n": 3, "blob": "b" * 1_200_000},
    ]

    results = [
        local_cloud.lambda_service.invoke(settings.name, json.dumps(event).encode())
        for event in events
    ]
    sqs.send_message(
        QueueUrl=local_cloud.queues.request_queue_url, MessageBody='{"not": "valid"}'
    )
    wait_until(
        lambda: any("dead-letter queue" in line for line in lab.stderr),
        10,
        "the poison message being dead-lettered",
    )
    lab.signal(signal.SIGINT)
    assert lab.wait(20) == 0

    secrets = {line for line in captured.read_text().splitlines() if line}
    assert len(secrets) >= 3, "the handler saw no key, secret and session token"
    assert [r.function_error for r in results] == [None, "Unhandled", None]
    assert "refused on purpose" in results[1].payload.decode()
    haystacks: dict[str, bytes] = {
        "the lab's stdout": "\n".join(lab.stdout).encode(),
        "the lab's stderr": "\n".join(lab.stderr).encode(),
        "this process's logs": caplog.text.encode(),
        **{f"result {n}": r.payload for n, r in enumerate(results)},
        **{str(path): data for path, data in files_under(home).items()},
    }
    assert any(b"START RequestId" in text for text in haystacks.values())
    leaks = [
        (where, secret[:4] + "...")
        for where, text in haystacks.items()
        for secret in secrets
        if secret.encode() in text
    ]
    assert leaks == []
