"""A stand-in for the Lambda service on the local cloud: it runs deployed code.

moto keeps functions' configurations but runs no code without Docker. This
plays the part Lambda plays for the proxy: it reads the deployed function's
configuration (handler, runtime, timeout, memory, environment, role), finds
the code that was deployed (by its CodeSha256, among the objects of the code
bucket), and runs it in execution environments of the lab's own kind, with
an event, a context, a deadline and the role's credentials, one invocation at
a time per environment. What runs is the real proxy package as deployed, not
a copy of its logic. Like Lambda, it does not tell the function whether an
invocation is asynchronous: the proxy tells from the event's source alone
(lambda_proxy/event_sources.py), as it must in AWS.

NOTE: asynchronous (Event) invocations run once; Lambda would retry a failed
one twice, a minute or more apart, which no test or demo wants to wait for.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from bridge.clock import now_ms
from bridge.environments.pool import Pool
from bridge.environments.process import Invocation, Outcome
from bridge.environments.variables import Platform, credential_variables
from bridge.errors import ConfigurationError
from bridge.function_settings import FunctionSettings
from lambda_proxy import wire

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Each proxy environment serves one invocation at a time, so this many
# overlapping invocations of one function can run (Lambda's default account
# concurrency is far higher; a laptop is not).
MAX_ENVIRONMENTS_PER_FUNCTION = 64

# Lambda applies a configuration update to invocations that start after it;
# re-reading the configuration this often is close enough for a laptop and
# keeps a control-plane call off every invocation.
CONFIGURATION_TTL_SECONDS = 1.0
# moto's AssumeRole grants an hour; Lambda refreshes well before expiry.
CREDENTIALS_TTL_SECONDS = 600.0


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke API answers."""

    status_code: int
    payload: bytes
    function_error: str | None = None


class _QuietLog:
    """The proxy's own logs go to the debug log, not to the lab's console."""

    def start(self, function: str, request_id: str, version: str) -> None:
        logger.debug("%s START %s", function, request_id)

    def line(self, function: str, request_id: str | None, text: str) -> None:
        logger.debug("%s %s %s", function, request_id, text)

    def end(self, function: str, outcome: Outcome, memory_mb: int) -> None:
        logger.debug("%s END %s %s", function, outcome.request_id, outcome.status)


class LambdaService:
    """Invokes functions deployed on the local cloud, as Lambda would."""

    def __init__(self, clients: Any, code_bucket: str, endpoint_url: str) -> None:
        self._clients = clients
        self._code_bucket = code_bucket
        # The proxy forwards its environment's variables as the function's
        # own; a TMPDIR of each proxy environment's would make the lab see
        # a new configuration, and start a new environment, for each of them.
        self._platform = Platform(endpoint_url=endpoint_url, scratch_in_tmpdir=False)
        self._code_root = Path(tempfile.mkdtemp(prefix="mless-local-lambda-"))
        self._pools: dict[tuple[str, str], Pool] = {}
        self._configurations: _FreshValues[dict[str, Any]] = _FreshValues(
            CONFIGURATION_TTL_SECONDS
        )
        self._role_credentials: _FreshValues[wire.Credentials] = _FreshValues(
            CREDENTIALS_TTL_SECONDS
        )
        self._lock = threading.Lock()
        self._async = ThreadPoolExecutor(16, thread_name_prefix="mless-event")
        self._log = _QuietLog()

    def invoke(
        self,
        function_name: str,
        payload: bytes = b"{}",
        invocation_type: str = "RequestResponse",
        client_context: str | None = None,
    ) -> InvokeResult:
        """Invoke a function: wait for it, or queue it for an Event invocation.

        A payload over Lambda's limit for a synchronous invocation is refused
        before anything runs, with Lambda's own error (a botocore ClientError).
        """
        if invocation_type != "Event" and len(payload) > wire.LAMBDA_EVENT_MAX_BYTES:
            raise _request_too_large()
        try:
            event_json = payload.decode("utf-8")
            json.loads(event_json)
        except ValueError as exc:
            raise ConfigurationError(
                f"The payload for {function_name!r} is not JSON: {exc}"
            ) from exc
        if invocation_type == "Event":
            self._async.submit(self._invoke_logged, function_name, event_json)
            return InvokeResult(202, b"")
        outcome = self._run(function_name, event_json, client_context)
        return _invoke_result(outcome)

    def close(self) -> None:
        self._async.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools.values():
            pool.close()

    def _invoke_logged(self, function_name: str, event_json: str) -> None:
        try:
            outcome = self._run(function_name, event_json, None)
        except Exception:
            logger.exception("Event invocation of %s failed", function_name)
            return
        if outcome.error is not None:
            logger.warning(
                "Event invocation %s of %s ended with %s",
                outcome.request_id,
                function_name,
                outcome.error_type,
            )

    def _run(
        self, function_name: str, event_json: str, client_context: str | None
    ) -> Outcome:
        config = self._configuration(function_name)
        pool = self._pool(config)
        function = _identity(config, function_name.partition(":")[2])
        credentials = self._credentials(config)
        request_id = str(uuid.uuid4())
        invocation = Invocation(
            request_id=request_id,
            invoked_function_arn=function["invoked_arn"],
            deadline_ms=now_ms() + function["timeout_ms"],
            timeout_ms=function["timeout_ms"],
            event_json=event_json,
            client_context_json=_decode_client_context(client_context),
            trace_id=_trace_id(),
            environment=credential_variables(credentials),
            deadline_after_init=True,
        )
        variables = config.get("Environment", {}).get("Variables", {})
        return pool.invoke(function, variables, credentials, invocation)

    def _pool(self, config: dict[str, Any]) -> Pool:
        key = (config["FunctionName"], config["CodeSha256"])
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                settings = FunctionSettings(
                    name=config["FunctionName"],
                    handler=config["Handler"],
                    code_dir=self._code_dir(config["CodeSha256"]),
                    runtime=config.get("Runtime", "python3.12"),
                    # Lambda's Python runtimes include boto3; the lab's
                    # interpreter has it, whatever version the runtime names.
                    interpreter=sys.executable,
                    concurrency=MAX_ENVIRONMENTS_PER_FUNCTION,
                )
                pool = self._pools[key] = Pool(settings, self._log, self._platform)
        return pool

    def _code_dir(self, code_sha256: str) -> Path:
        """Unpack the deployed package whose SHA-256 Lambda reports."""
        target = self._code_root / hashlib.sha256(code_sha256.encode()).hexdigest()
        if target.is_dir():
            return target
        s3 = self._clients.client("s3")
        listing = s3.list_objects_v2(Bucket=self._code_bucket)
        for item in listing.get("Contents", []):
            body = s3.get_object(Bucket=self._code_bucket, Key=item["Key"])["Body"]
            data = body.read()
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            if digest == code_sha256:
                zipfile.ZipFile(io.BytesIO(data)).extractall(target)
                return target
        raise ConfigurationError(
            f"No package with SHA-256 {code_sha256} is in bucket "
            f"{self._code_bucket}; the local cloud runs only code deployed there."
        )

    def _configuration(self, function_name: str) -> dict[str, Any]:
        """The function's configuration, as Lambda knows it between updates."""
        lambda_client = self._clients.client("lambda")
        return self._configurations.get(
            function_name,
            functools.partial(
                lambda_client.get_function_configuration, FunctionName=function_name
            ),
        )

    def _credentials(self, config: dict[str, Any]) -> wire.Credentials:
        """The role's credentials, reused while they are fresh, as Lambda does."""
        return self._role_credentials.get(
            config["Role"], lambda: self._assume_role(config)
        )

    def _assume_role(self, config: dict[str, Any]) -> wire.Credentials:
        sts = self._clients.client("sts")
        session_name = config["FunctionName"][:64]
        granted = sts.assume_role(RoleArn=config["Role"], RoleSessionName=session_name)
        credentials = granted["Credentials"]
        return {
            "access_key_id": credentials["AccessKeyId"],
            "secret_access_key": credentials["SecretAccessKey"],
            "session_token": credentials["SessionToken"],
        }


class _FreshValues(Generic[T]):
    """Values fetched at most once per time to live, however many ask at once.

    When a value expires, one caller fetches it again and the others wait
    for that: 32 callers at once would otherwise fetch it 32 times, a load
    on the endpoint that real Lambda does not put on it.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl_seconds = ttl_seconds
        self._values: dict[str, tuple[float, T]] = {}
        self._fetching: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: str, fetch: Callable[[], T]) -> T:
        with self._lock:
            fetching = self._fetching.setdefault(key, threading.Lock())
        with fetching:
            with self._lock:
                cached = self._values.get(key)
            if cached is not None and time.monotonic() - cached[0] < self._ttl_seconds:
                return cached[1]
            fetched_at = time.monotonic()
            value = fetch()
            with self._lock:
                self._values[key] = (fetched_at, value)
            return value


def _identity(config: dict[str, Any], qualifier: str) -> wire.FunctionIdentity:
    name = config["FunctionName"]
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    # Lambda tells the function the ARN it was invoked by: unqualified, or
    # with the alias or version the caller named (an alias stays an alias).
    invoked_arn = ":".join(config["FunctionArn"].split(":")[:7])
    if qualifier:
        invoked_arn = f"{invoked_arn}:{qualifier}"
    return {
        "name": name,
        "version": config.get("Version", "$LATEST"),
        "invoked_arn": invoked_arn,
        "memory_mb": int(config.get("MemorySize", 128)),
        "timeout_ms": int(config.get("Timeout", 3)) * 1000,
        "region": config["FunctionArn"].split(":")[3],
        "log_group": f"/aws/lambda/{name}",
        "log_stream": f"{day}/[$LATEST]{uuid.uuid4().hex}",
    }


def _request_too_large() -> ClientError:
    limit = wire.LAMBDA_EVENT_MAX_BYTES
    response: Any = {
        "Error": {
            "Code": "RequestEntityTooLargeException",
            "Message": f"Request must be smaller than {limit} bytes for the "
            "InvokeFunction operation",
        },
        "ResponseMetadata": {"HTTPStatusCode": 413},
    }
    return ClientError(response, "Invoke")


def _invoke_result(outcome: Outcome) -> InvokeResult:
    if outcome.payload is not None:
        return InvokeResult(200, outcome.payload.encode("utf-8"))
    if outcome.raw_payload is not None:
        return InvokeResult(200, outcome.raw_payload)
    # Lambda serializes error payloads with the runtime's default separators.
    error = json.dumps(outcome.error or {}, ensure_ascii=False)
    return InvokeResult(200, error.encode("utf-8"), function_error="Unhandled")


def _decode_client_context(client_context: str | None) -> str | None:
    # The Invoke API takes the client context base64-encoded.
    if client_context is None:
        return None
    return base64.b64decode(client_context).decode("utf-8")


def _trace_id() -> str:
    epoch = f"{int(now_ms() / 1000):08x}"
    return (
        f"Root=1-{epoch}-{uuid.uuid4().hex[:24]};"
        f"Parent={uuid.uuid4().hex[:16]};Sampled=0"
    )
