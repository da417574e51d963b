"""`mless run --attach`: attach, serve, detach on SIGTERM, and recover after a crash.

`mless run` runs as a child process, as a developer starts it, against a
stack of each test's own on the session's moto server; the test invokes the
function through the local cloud's Lambda stand-in, which runs the attached
function's proxy (from the lab's interpreter, not from the proxy's layer:
moto runs no code).

Each test has a stack of its own because a lab that exits leaves its long
polls waiting in moto's server, which may still hand them a message: that
message stays hidden for the visibility timeout, and would be missed by the
next test serving the same queue.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.deploy import deploy_stack
from bridge.local_cloud import LocalCloud
from bridge.snapshots import FunctionState
from bridge.stack import StackOutputs, StackSettings

START_SECONDS = 60.0
STOP_SECONDS = 60.0

HANDLER_SOURCE = """\
import os

def handler(event, context):
    return {"doubled": event["n"] * 2, "greeting": os.environ.get("GREETING")}
"""


class RunningLab:
    """A `mless run` child process, and the lines it writes to stderr."""

    def __init__(self, arguments: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", *arguments],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, text: str, seconds: float = START_SECONDS) -> None:
        with self._changed:
            found = self._changed.wait_for(
                lambda: (
                    any(text in line for line in self.lines)
                    or self.process.poll() is not None
                ),
                seconds,
            )
        if not found or not any(text in line for line in self.lines):
            raise AssertionError(f"{text!r} never came; the lab said: {self.lines}")

    def stop(self, number: int = signal.SIGTERM) -> int:
        self.process.send_signal(number)
        return self.process.wait(STOP_SECONDS)


@pytest.fixture
def stack(local_cloud: LocalCloud) -> StackOutputs:
    """A stack of this test's own, with its own request queue."""
    clients = local_cloud.clients
    name = f"mless-run-{uuid.uuid4().hex[:8]}"
    return deploy_stack(
        clients.client("cloudformation"),
        clients.client("s3"),
        clients.client("sts"),
        stack_name=name,
        settings=StackSettings(name_prefix=name),
        sleep=lambda seconds: None,
        lambda_client=clients.client("lambda"),
    )


@pytest.fixture
def attachable(local_cloud: LocalCloud, tmp_path: Path) -> Iterator[str]:
    """A Python function on the local cloud, its code also in the current folder."""
    clients = local_cloud.clients
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER_SOURCE)
    code = buffer.getvalue()
    # The stand-in runs code it finds by its hash in the code bucket.
    key = f"test/{uuid.uuid4().hex}.zip"
    s3 = clients.client("s3")
    s3.put_object(Bucket=local_cloud.code_bucket, Key=key, Body=code)
    name = f"run-{uuid.uuid4().hex[:8]}"
    role = clients.client("iam").create_role(
        RoleName=f"role-{name}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    clients.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code},
        Timeout=5,
        Environment={"Variables": {"GREETING": "hello"}},
    )
    (tmp_path / "app.py").write_text(HANDLER_SOURCE)
    yield name
    s3.delete_object(Bucket=local_cloud.code_bucket, Key=key)


@pytest.fixture
def lab_env(
    local_cloud: LocalCloud, stack: StackOutputs, tmp_path: Path
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MLESS_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        MLESS_ENDPOINT_URL=local_cloud.endpoint_url,
        MLESS_HOME=str(tmp_path / "home"),
        MLESS_STACK=stack.stack_name,
    )
    return env


def _state(local_cloud: LocalCloud, name: str) -> FunctionState:
    lambda_client = local_cloud.clients.client("lambda")
    return FunctionState.of(lambda_client.get_function_configuration(FunctionName=name))


def test_run_attaches_serves_and_detaches_on_sigterm(
    local_cloud: LocalCloud, attachable: str, lab_env: dict[str, str], tmp_path: Path
) -> None:
    before = _state(local_cloud, attachable)
    lab = RunningLab(["run", "--attach", attachable], tmp_path, lab_env)
    try:
        lab.wait_for("Ctrl+C stops")
        during = _state(local_cloud, attachable)
        result = local_cloud.lambda_service.invoke(attachable, b'{"n": 21}')
    finally:
        status = lab.stop(signal.SIGTERM)

    assert during.handler == "lambda_proxy.handler.handler"
    assert result.function_error is None, result.payload
    assert json.loads(result.payload) == {"doubled": 42, "greeting": "hello"}
    assert status == 0, lab.lines
    assert f"mless: attached {attachable}" in lab.lines
    assert f"mless: detached {attachable}: restored exactly" in lab.lines
    assert _state(local_cloud, attachable) == before


def test_a_run_that_crashed_is_recovered_by_the_next_one(
    local_cloud: LocalCloud, attachable: str, lab_env: dict[str, str], tmp_path: Path
) -> None:
    before = _state(local_cloud, attachable)
    crashed = RunningLab(["run", "--attach", attachable], tmp_path, lab_env)
    crashed.wait_for("Ctrl+C stops")
    crashed.stop(signal.SIGKILL)
    left_attached = _state(local_cloud, attachable)

    # Without a terminal on stdin, the next run restores without asking.
    next_run = RunningLab(["run"], tmp_path, lab_env)
    try:
        next_run.wait_for("Ctrl+C stops")
        recovered = _state(local_cloud, attachable)
    finally:
        next_run.stop(signal.SIGTERM)

    assert left_attached.handler == "lambda_proxy.handler.handler"
    pid = crashed.process.pid
    assert any(
        line.startswith(
            f"mless: {attachable} was left attached by mless run (pid {pid})"
        )
        for line in next_run.lines
    ), next_run.lines
    assert f"mless: detached {attachable}: restored exactly" in next_run.lines
    assert recovered == before


def test_run_with_a_bad_mless_yaml_exits_2_and_attaches_nothing(
    local_cloud: LocalCloud,
    stack: StackOutputs,
    attachable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _state(local_cloud, attachable)
    (tmp_path / "mless.yaml").write_text(
        "functions:\n  hash:\n    debugger: {kind: debugpy, wait: maybe}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLESS_ENDPOINT_URL", local_cloud.endpoint_url)
    monkeypatch.setenv("MLESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLESS_STACK", stack.stack_name)

    started = time.monotonic()
    result = CliRunner().invoke(main, ["run", "--attach", attachable])

    assert result.exit_code == 2
    assert result.stderr == (
        "mless: mless.yaml: functions.hash.debugger.wait: expected true or false; "
        "got 'maybe'.\n"
    )
    assert time.monotonic() - started < STOP_SECONDS
    assert _state(local_cloud, attachable) == before


def test_a_second_run_on_a_served_stack_is_refused(
    local_cloud: LocalCloud, lab_env: dict[str, str], tmp_path: Path
) -> None:
    first = RunningLab(["run"], tmp_path, lab_env)
    try:
        first.wait_for("Ctrl+C stops")
        second = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "run"],
            cwd=tmp_path,
            env=lab_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STOP_SECONDS,
        )
    finally:
        first.stop(signal.SIGTERM)

    lab = f"{socket.gethostname()}:{first.process.pid}"
    assert second.returncode == 1
    assert second.stderr == (
        f"mless: Another lab ({lab}) is serving stack {lab_env['MLESS_STACK']}: "
        "two labs would split its requests between them. Stop that one first.\n"
    )


def test_a_run_after_one_that_stopped_starts_at_once(
    local_cloud: LocalCloud, lab_env: dict[str, str], tmp_path: Path
) -> None:
    first = RunningLab(["run"], tmp_path, lab_env)
    first.wait_for("Ctrl+C stops")
    assert first.stop(signal.SIGTERM) == 0

    second = RunningLab(["run"], tmp_path, lab_env)
    try:
        second.wait_for("Ctrl+C stops")
    finally:
        assert second.stop(signal.SIGTERM) == 0
