"""Snapshots: what a function was before `mless attach`, kept twice until detach.

A snapshot holds the configuration that attaching changes (handler, runtime,
layers, environment, timeout, memory) and what detaching needs to undo the
rest (the role and whether the proxy's policy was on it already). It is kept
on this machine, under `$MLESS_HOME/snapshots` (default `~/.mless`), and in
AWS, as an object in the stack's code bucket that a tag on the function
points to: a tag value holds only 256 characters, far less than a function's
environment. Either copy is enough to detach, so neither a lost laptop nor a
lost bucket leaves a function that cannot be restored.

NOTE: a snapshot holds the function's environment variables, which may be
secrets. The local file is readable by its owner only; the object lies in the
private code bucket, encrypted by S3's default encryption.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bridge.errors import AwsError, ConfigurationError, calling_aws, error_code

SNAPSHOT_FORMAT = 1
SNAPSHOT_TAG = "mless:snapshot"
SNAPSHOT_PREFIX = "mless/snapshots/"
HOME_VARIABLE = "MLESS_HOME"


@dataclass(frozen=True)
class FunctionState:
    """The parts of a function's configuration that attaching changes."""

    handler: str
    runtime: str
    layers: tuple[str, ...]
    environment: Mapping[str, str]
    timeout_seconds: int
    memory_mb: int

    @classmethod
    def of(cls, configuration: Mapping[str, Any]) -> FunctionState:
        """Read the state from a GetFunctionConfiguration answer."""
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        return cls(
            handler=configuration.get("Handler", ""),
            runtime=configuration.get("Runtime", ""),
            layers=tuple(layer["Arn"] for layer in configuration.get("Layers") or []),
            environment=dict(variables),
            timeout_seconds=int(configuration.get("Timeout", 3)),
            memory_mb=int(configuration.get("MemorySize", 128)),
        )

    def update_arguments(self, current: FunctionState | None = None) -> dict[str, Any]:
        """The UpdateFunctionConfiguration arguments that set exactly this state.

        Given the `current` state, only the fields that differ from it.
        """
        arguments = {
            "Handler": self.handler,
            "Runtime": self.runtime,
            "Layers": list(self.layers),
            "Environment": {"Variables": dict(self.environment)},
            "Timeout": self.timeout_seconds,
            "MemorySize": self.memory_mb,
        }
        if current is None:
            return arguments
        theirs = current.update_arguments()
        return {
            name: value for name, value in arguments.items() if theirs[name] != value
        }

    def differences(self, other: FunctionState) -> list[str]:
        """Describe each field in which `other` differs from this state."""
        found = []
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name == "environment":
                found.extend(_variable_differences(mine, theirs))
            elif mine != theirs:
                found.append(f"{item.name}: expected {mine!r}, found {theirs!r}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "runtime": self.runtime,
            "layers": list(self.layers),
            "environment": dict(self.environment),
            "timeout_seconds": self.timeout_seconds,
            "memory_mb": self.memory_mb,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FunctionState:
        return cls(
            handler=str(data["handler"]),
            runtime=str(data["runtime"]),
            layers=tuple(str(arn) for arn in data["layers"]),
            environment={str(k): str(v) for k, v in data["environment"].items()},
            timeout_seconds=int(data["timeout_seconds"]),
            memory_mb=int(data["memory_mb"]),
        )


def _variable_differences(
    expected: Mapping[str, str], found: Mapping[str, str]
) -> list[str]:
    # Values are never shown: environments hold secrets.
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    changed = sorted(
        k for k in expected.keys() & found.keys() if expected[k] != found[k]
    )
    lines = []
    for label, names in (("missing", missing), ("added", extra), ("changed", changed)):
        if names:
            lines.append(f"environment: {label} {', '.join(names)}")
    return lines


@dataclass(frozen=True)
class Session:
    """The `mless run` that attached a function and detaches it when it ends."""

    host: str
    pid: int

    @classmethod
    def current(cls) -> Session:
        return cls(socket.gethostname(), os.getpid())

    def is_gone(self) -> bool:
        """Whether this session's process is known to have ended (on this host)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


@dataclass(frozen=True)
class Snapshot:
    """A function's configuration before attaching, and how to undo the rest."""

    function_name: str
    function_arn: str
    stack_name: str
    state: FunctionState
    role_name: str
    policy_arn: str
    policy_was_attached: bool
    proxy_layer_arn: str
    bucket: str
    taken_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    session: Session | None = None

    @property
    def key(self) -> str:
        """The S3 key of this snapshot in the code bucket."""
        return f"{SNAPSHOT_PREFIX}{self.function_name}.json"

    @property
    def location(self) -> str:
        """Where the AWS copy lies, as the function's tag records it."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def account_region(self) -> str:
        """`ACCOUNT-REGION` of the function, from its ARN."""
        return arn_account_region(self.function_arn)

    def to_json(self) -> str:
        data = {
            "v": SNAPSHOT_FORMAT,
            "function_name": self.function_name,
            "function_arn": self.function_arn,
            "stack_name": self.stack_name,
            "state": self.state.to_json(),
            "role_name": self.role_name,
            "policy_arn": self.policy_arn,
            "policy_was_attached": self.policy_was_attached,
            "proxy_layer_arn": self.proxy_layer_arn,
            "bucket": self.bucket,
            "taken_at": self.taken_at,
            "session": None
            if self.session is None
            else {"host": self.session.host, "pid": self.session.pid},
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> Snapshot:
        """Parse a snapshot; ConfigurationError names the source if it is unusable."""
        try:
            data = json.loads(text)
            if data.get("v") != SNAPSHOT_FORMAT:
                raise ValueError(f"format {data.get('v')!r} is not {SNAPSHOT_FORMAT}")
            session = data.get("session")
            return cls(
                function_name=str(data["function_name"]),
                function_arn=str(data["function_arn"]),
                stack_name=str(data["stack_name"]),
                state=FunctionState.from_json(data["state"]),
                role_name=str(data["role_name"]),
                policy_arn=str(data["policy_arn"]),
                policy_was_attached=bool(data["policy_was_attached"]),
                proxy_layer_arn=str(data["proxy_layer_arn"]),
                bucket=str(data["bucket"]),
                taken_at=str(data["taken_at"]),
                session=None
                if session is None
                else Session(str(session["host"]), int(session["pid"])),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"The snapshot {source} is unusable ({exc}); restore the function "
                "by hand from it, then delete it."
            ) from exc


def mless_home() -> Path:
    """Return the directory where mless keeps its files on this machine."""
    return Path(os.environ.get(HOME_VARIABLE) or Path.home() / ".mless")


class LocalSnapshots:
    """Snapshots kept on this machine, one file per function, by account and region."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or mless_home() / "snapshots"

    def save(self, snapshot: Snapshot) -> Path:
        """Write a snapshot durably: a crash leaves the old file or the new one."""
        path = self._path(snapshot.account_region, snapshot.function_name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(snapshot.to_json())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def load(self, account_region: str, function_name: str) -> Snapshot | None:
        path = self._path(account_region, function_name)
        if not path.is_file():
            return None
        return Snapshot.from_json(path.read_bytes(), str(path))

    def delete(self, snapshot: Snapshot) -> None:
        self._path(snapshot.account_region, snapshot.function_name).unlink(
            missing_ok=True
        )

    def archive(self, snapshot: Snapshot) -> Path:
        """Keep a copy of a snapshot whose restore was not exact; return its path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = self.root / snapshot.account_region / "restored"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{snapshot.function_name}-{stamp}.json"
        path.write_text(snapshot.to_json(), encoding="utf-8")
        path.chmod(0o600)
        return path

    def all(self, account_region: str) -> Iterator[Snapshot]:
        folder = self.root / account_region
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            yield Snapshot.from_json(path.read_bytes(), str(path))

    def _path(self, account_region: str, function_name: str) -> Path:
        return self.root / account_region / f"{function_name}.json"


class SnapshotStore:
    """Both copies of every snapshot: this machine's, and AWS's with its tag."""

    def __init__(
        self, lambda_client: Any, s3: Any, local: LocalSnapshots | None = None
    ) -> None:
        self._lambda = lambda_client
        self._s3 = s3
        self.local = local or LocalSnapshots()

    def record(self, snapshot: Snapshot) -> None:
        """Keep a snapshot here, then in AWS, then tag the function with it."""
        self.local.save(snapshot)
        with calling_aws(snapshot.location):
            self._s3.put_object(
                Bucket=snapshot.bucket,
                Key=snapshot.key,
                Body=snapshot.to_json().encode(),
                ContentType="application/json",
            )
        with calling_aws(f"function {snapshot.function_name}"):
            self._lambda.tag_resource(
                Resource=snapshot.function_arn, Tags={SNAPSHOT_TAG: snapshot.location}
            )

    def forget(self, snapshot: Snapshot) -> None:
        """Remove both copies of a snapshot and the tag that points to one."""
        try:
            self._lambda.untag_resource(
                Resource=snapshot.function_arn, TagKeys=[SNAPSHOT_TAG]
            )
        except ClientError as exc:
            # A function deleted in the meantime has no tag to remove.
            if error_code(exc) != "ResourceNotFoundException":
                raise AwsError.from_client_error(
                    exc, f"function {snapshot.function_name}"
                ) from exc
        with calling_aws(snapshot.location):
            self._s3.delete_object(Bucket=snapshot.bucket, Key=snapshot.key)
        self.local.delete(snapshot)

    def find(self, function_name: str, function_arn: str) -> Snapshot | None:
        """Return a function's snapshot: this machine's copy, else the one in AWS."""
        local = self.local.load(arn_account_region(function_arn), function_name)
        if local is not None:
            return local
        with calling_aws(f"function {function_name}"):
            tags = self._lambda.list_tags(Resource=function_arn).get("Tags", {})
        location = tags.get(SNAPSHOT_TAG, "")
        if not location.startswith("s3://"):
            return None
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return self._read_remote(bucket, key)

    def find_here(self, function_name: str) -> Snapshot | None:
        """Return this machine's snapshot of a function by name alone, if one."""
        # Used when the function is gone, so its ARN (account, region) is unknown.
        root = self.local.root
        for folder in sorted(root.glob("*")) if root.is_dir() else ():
            found = self.local.load(folder.name, function_name)
            if found is not None:
                return found
        return None

    def of_stack(
        self, stack_name: str, account_region: str, bucket: str
    ) -> list[Snapshot]:
        """Return the snapshots of every function attached to a stack, by name."""
        found = {
            s.function_name: s
            for s in self.local.all(account_region)
            if s.stack_name == stack_name
        }
        for snapshot in self._remote(bucket):
            # The local copy knows this machine's session; it wins.
            if snapshot.stack_name == stack_name:
                found.setdefault(snapshot.function_name, snapshot)
        return [found[name] for name in sorted(found)]

    def left_behind(self, stack_name: str, account_region: str) -> list[Snapshot]:
        """Return the snapshots of `mless run`s on this machine that have ended."""
        return [
            snapshot
            for snapshot in self.local.all(account_region)
            if snapshot.stack_name == stack_name
            and snapshot.session is not None
            and snapshot.session.is_gone()
        ]

    def _remote(self, bucket: str) -> Iterator[Snapshot]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=SNAPSHOT_PREFIX
        )
        with calling_aws(f"s3://{bucket}/{SNAPSHOT_PREFIX}"):
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        for key in keys:
            snapshot = self._read_remote(bucket, key)
            if snapshot is not None:
                yield snapshot

    def _read_remote(self, bucket: str, key: str) -> Snapshot | None:
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in {"NoSuchKey", "404", "NoSuchBucket"}:
                return None
            raise AwsError.from_client_error(exc, f"s3://{bucket}/{key}") from exc
        return Snapshot.from_json(body, f"s3://{bucket}/{key}")


def arn_account_region(arn: str) -> str:
    """Return `ACCOUNT-REGION` of an ARN: the folder of its local snapshots."""
    parts = arn.split(":")
    return f"{parts[4]}-{parts[3]}"
