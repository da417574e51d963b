"""Hot reload, through the whole bridge: a saved change runs on the next event.

Each test writes a function's code into a temporary directory, deploys it on
the local cloud and serves it from a lab with hot reload on (the default),
then edits the code while the lab runs.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bridge.environments.process import Outcome
from bridge.function_settings import FunctionSettings
from bridge.lab import Lab
from bridge.local_cloud import LocalCloud

NOTICE_WAIT_SECONDS = 10.0

HANDLER = """
import os
import time

from helper import value

# Init runs once per execution environment: a new one starts from zero.
CALLS = {"count": 0}


def handler(event, context):
    CALLS["count"] += 1
    if event.get("sleep"):
        print("sleeping")
        time.sleep(event["sleep"])
    return {"value": value, "pid": os.getpid(), "calls": CALLS["count"]}
"""


class NotedLog:
    """Keeps the lab's own lines (the reload line among them) besides the rest."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.lines: list[str] = []
        self._noted = threading.Condition()

    def start(self, function: str, request_id: str, version: str) -> None:
        pass

    def line(self, function: str, request_id: str | None, text: str) -> None:
        self.lines.append(text)

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        pass

    def note(self, text: str) -> None:
        with self._noted:
            self.notes.append(text)
            self._noted.notify_all()

    def wait_for_notes(self, count: int, timeout: float) -> bool:
        with self._noted:
            return self._noted.wait_for(lambda: len(self.notes) >= count, timeout)


@pytest.fixture
def log() -> NotedLog:
    return NotedLog()


@pytest.fixture
def serve(local_cloud: LocalCloud, log: NotedLog) -> Iterator[Callable[..., str]]:
    """Deploy a function for the given code and serve it from a lab; return its name."""
    labs: list[Lab] = []

    def start(code_dir: Path, layers: tuple[Path, ...] = ()) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        local_cloud.create_function(name, timeout_seconds=10)
        settings = FunctionSettings(name, "app.handler", code_dir, layers=layers)
        lab = Lab(
            local_cloud.clients.client("sqs"),
            local_cloud.queues,
            [settings],
            log,
            endpoint_url=local_cloud.endpoint_url,
            poll_wait_seconds=1,
        )
        labs.append(lab.start())
        return name

    yield start
    for lab in labs:
        lab.stop()


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(HANDLER))
    (code / "helper.py").write_text('value = "old"\n')
    return code


def _invoke(local_cloud: LocalCloud, name: str, event: Any = None) -> dict[str, Any]:
    result = local_cloud.lambda_service.invoke(name, json.dumps(event or {}).encode())
    assert result.function_error is None, result.payload
    payload: dict[str, Any] = json.loads(result.payload)
    return payload


def _wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _edit_keeping_size_and_time(path: Path, old: str, new: str) -> None:
    """Edit a file as a quick second save does: same size, same whole second.

    Python's bytecode cache cannot tell such an edit from the file it compiled.
    """
    assert len(old) == len(new)
    before = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_an_edit_to_an_imported_module_runs_in_a_fresh_environment(
    serve, code_dir, local_cloud, log
):
    name = serve(code_dir)
    warm = [_invoke(local_cloud, name) for _ in range(3)]
    assert [result["calls"] for result in warm] == [1, 2, 3]
    assert len({result["pid"] for result in warm}) == 1

    _edit_keeping_size_and_time(code_dir / "helper.py", '"old"', '"new"')
    assert log.wait_for_notes(1, NOTICE_WAIT_SECONDS), "the lab noticed no change"
    fourth = _invoke(local_cloud, name)

    assert fourth["value"] == "new"
    assert fourth["calls"] == 1
    assert fourth["pid"] != warm[0]["pid"]
    assert log.notes == [
        f"helper.py changed: {name} will run the new code in a new execution "
        "environment from the next invocation."
    ]


def test_an_invocation_running_when_the_change_lands_finishes_on_the_old_code(
    serve, code_dir, local_cloud, log
):
    name = serve(code_dir)
    before = _invoke(local_cloud, name)

    with ThreadPoolExecutor(1) as caller:
        running = caller.submit(_invoke, local_cloud, name, {"sleep": 3})
        assert _wait_until(lambda: "sleeping" in log.lines), "the handler never ran"
        (code_dir / "helper.py").write_text('value = "new"\n')
        assert log.wait_for_notes(1, NOTICE_WAIT_SECONDS)
        during = running.result(timeout=30)
    after = _invoke(local_cloud, name)

    assert (during["value"], during["pid"], during["calls"]) == (
        "old",
        before["pid"],
        2,
    )
    assert (after["value"], after["calls"]) == ("new", 1)
    assert after["pid"] != before["pid"]


def test_no_invocation_is_lost_while_changes_land(serve, code_dir, local_cloud, log):
    name = serve(code_dir)
    results = [_invoke(local_cloud, name)]  # warm, on the first version
    stop = threading.Event()

    def keep_invoking() -> None:
        while not stop.is_set():
            results.append(_invoke(local_cloud, name, {"sleep": 0.1}))

    with ThreadPoolExecutor(1) as caller:
        invoking = caller.submit(keep_invoking)
        for step in range(2):
            time.sleep(1.0)
            (code_dir / "helper.py").write_text(f'value = "new{step}"\n')
            assert log.wait_for_notes(step + 1, NOTICE_WAIT_SECONDS)
        time.sleep(1.0)
        stop.set()
        invoking.result(timeout=60)  # raises if any invocation failed

    values = [result["value"] for result in results]
    # Each version ran in one unbroken stretch, in the order the edits landed
    # (on a loaded machine no invocation may fall between the two edits).
    stretches = [
        value for i, value in enumerate(values) if values[i - 1 : i] != [value]
    ]
    order = ["old", "new0", "new1"]
    assert stretches == sorted(set(stretches), key=order.index), values
    assert (stretches[0], stretches[-1]) == ("old", "new1"), values


def test_without_a_change_the_warm_environment_is_kept(
    serve, code_dir, local_cloud, log
):
    name = serve(code_dir)
    first = _invoke(local_cloud, name)

    # What editors and Python leave behind is not a change to the code.
    (code_dir / ".helper.py.swp").write_text("swap")
    (code_dir / "helper.py~").write_text("backup")
    (code_dir / "__pycache__").mkdir(exist_ok=True)
    (code_dir / "__pycache__" / "stray.cpython-311.pyc").write_bytes(b"")
    time.sleep(1.5)
    second = _invoke(local_cloud, name)

    assert log.notes == []
    assert (second["pid"], second["calls"]) == (first["pid"], 2)


def test_an_edit_to_a_layer_runs_in_a_fresh_environment(
    serve, tmp_path, local_cloud, log
):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(HANDLER))
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "helper.py").write_text('value = "old"\n')
    name = serve(code, layers=(layer,))
    first = _invoke(local_cloud, name)

    (layer / "python" / "helper.py").write_text('value = "new"\n')
    assert log.wait_for_notes(1, NOTICE_WAIT_SECONDS)
    second = _invoke(local_cloud, name)

    assert (first["value"], second["value"]) == ("old", "new")
    assert second["pid"] != first["pid"]
    assert log.notes[0].startswith("python/helper.py changed: ")
