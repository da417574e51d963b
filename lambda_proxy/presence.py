"""Whether the lab is listening, from its heartbeat; the route of each invocation.

While `mless run` serves, the lab publishes its *heartbeat* (see
bridge/heartbeat.py): one small JSON object in the stack's payload bucket,
under HEARTBEAT_KEY, rewritten every BEAT_SECONDS with the state "serving",
and overwritten with the state "stopped" as soon as the lab stops. The proxy
reads it with one GetObject, at most once per ONLINE_CACHE_SECONDS per
execution environment, and judges its age by the object's LastModified time,
which is S3's clock: a lab whose own clock is off changes nothing. A lab that
crashed stops rewriting it and is taken as offline once its heartbeat is
older than OFFLINE_AFTER_SECONDS. A caller already waiting for the lab gives
up on it before its timeout RESTART_GRACE_SECONDS after the lab said it
stopped, or after GIVE_UP_SILENCE_SECONDS of silence (`Sighting.gone`).

Why an object and not a tag on the request queue: SQS has documented its
tagging actions as limited to 5 requests per second per account, which the
proxy environments of a busy function would exceed; S3 serves thousands of
GETs per second per prefix. The object is overwritten, never deleted, so that
a missing key means that no lab ever served the stack (GetObject of a missing
key answers AccessDenied instead of NoSuchKey to a role that may not list the
bucket; the stack's ProxyAccessPolicy grants s3:ListBucket for that reason).

The *mode* (MLESS_MODE, per function) says what the proxy does with an
invocation; together with the lab's presence and the event's source it picks
one `Route`:

    mode    lab online or unknown    lab offline
    sync    wait for the lab         wait for the lab (Mless.LabTimeout)
    async   queue for the lab        queue for the lab
    mirror  run in place + copy      run in place
    auto    wait for the lab         queue (asynchronous sources) or refuse

Library mode (`library`) runs the wrapped handler in place where the proxy
would queue or refuse. Standard library and boto3 only: deployed with the
proxy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypedDict

from lambda_proxy.event_sources import EventSource, is_asynchronous

# Where the lab's heartbeat lies in the payload bucket. Payload bodies lie
# under CORRELATION_ID/KIND, so no stored envelope can name this key.
HEARTBEAT_KEY = "mless/lab-heartbeat.json"
HEARTBEAT_VERSION = 1

# The lab rewrites its heartbeat this often.
BEAT_SECONDS = 2.0
# Three beats missed. LastModified counts whole seconds, so a heartbeat may
# look up to a second older than it is.
OFFLINE_AFTER_SECONDS = 6.0
# How long a proxy environment trusts what it read. A lab seen offline is
# looked for again sooner, so one that just started is found within a second.
ONLINE_CACHE_SECONDS = 2.0
OFFLINE_CACHE_SECONDS = 1.0
# A caller already waiting when the lab stops keeps waiting this long for a
# lab started again (a restart of `mless run`) to take its request, which the
# stopping lab put back in the queue.
RESTART_GRACE_SECONDS = 10.0
# A caller already waiting gives up on a silent lab only after this long: a
# lab that cannot reach S3 for a while (throttling, a network blip) still
# holds the requests it received.
GIVE_UP_SILENCE_SECONDS = 30.0

# Reading the heartbeat must not hold up the caller: a second to connect,
# a second to read, one retry. A heartbeat that cannot be read is "unknown".
READ_TIMEOUT_SECONDS = 1.0
_MISSING = {"NoSuchKey", "404", "NotFound"}


class HeartbeatBody(TypedDict):
    """What the heartbeat object holds (JSON)."""

    v: int
    state: Literal["serving", "stopped"]
    lab: str
    functions: list[str]
    at_ms: int


class Mode(Enum):
    """How a function's proxy treats its invocations (MLESS_MODE)."""

    SYNC = "sync"
    ASYNC = "async"
    MIRROR = "mirror"
    AUTO = "auto"

    @classmethod
    def named(cls, name: str | None) -> Mode:
        """The mode called `name` (any case); AUTO when unset or empty.

        Raises ValueError naming the modes there are.
        """
        if not name:
            return cls.AUTO
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(mode.value for mode in cls)
            raise ValueError(
                f"MLESS_MODE is {name[:40]!r}; it must be one of {known}."
            ) from None


class Presence(Enum):
    """What the heartbeat says of the lab."""

    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sighting:
    """The lab's presence as last read, and in words, for messages and logs."""

    presence: Presence
    detail: str
    read_at: float = 0.0  # epoch seconds
    functions: tuple[str, ...] = ()
    stopped: bool = False  # it said so, or never served
    silent_seconds: float = 0.0  # the heartbeat's age

    def gone(self) -> bool:
        """Whether a caller already waiting for the lab should stop waiting."""
        if self.presence is not Presence.OFFLINE:
            return False
        if self.stopped:
            return self.silent_seconds > RESTART_GRACE_SECONDS
        return self.silent_seconds > GIVE_UP_SILENCE_SECONDS


class Route(Enum):
    """What the proxy does with one invocation."""

    WAIT = "wait"  # send a request and wait for the lab's reply
    QUEUE = "queue"  # send a request nobody waits for; return at once
    MIRROR = "mirror"  # run the handler in place and send the lab a copy
    IN_PLACE = "in place"  # run the handler in place only
    REFUSE = "refuse"  # answer at once that the lab is offline


class LabPresence:
    """Reads the lab's heartbeat from the payload bucket, trusting it briefly.

    Without a bucket nothing can be read and the presence is UNKNOWN.
    `s3` is made on first use, with short timeouts; `clock` gives epoch
    seconds.
    """

    def __init__(
        self,
        bucket: str | None,
        s3: Any | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket = bucket or None
        self._s3 = s3
        self._clock = clock
        self._last: Sighting | None = None

    def sighting(self) -> Sighting:
        """The lab's presence, read again once what was read is too old."""
        now = self._clock()
        last = self._last
        if last is not None and now - last.read_at < _trust_seconds(last):
            return last
        self._last = self.read(now)
        return self._last

    def answered(self, now: float | None = None) -> None:
        """The lab has just replied: it is online, whatever was read before.

        A reply is fresher news than any heartbeat, so an environment that
        gets invocations more often than every ONLINE_CACHE_SECONDS reads no
        heartbeat while the lab answers them.
        """
        now = self._clock() if now is None else now
        functions = self._last.functions if self._last is not None else ()
        self._last = Sighting(
            Presence.ONLINE, "it answered a request just now", now, functions
        )

    def read(self, now: float | None = None) -> Sighting:
        """Read the heartbeat now, whatever was read before."""
        now = self._clock() if now is None else now
        if self.bucket is None:
            return Sighting(Presence.UNKNOWN, "the stack has no payload bucket", now)
        try:
            response = self.client().get_object(Bucket=self.bucket, Key=HEARTBEAT_KEY)
            body = response["Body"].read()
            written_at = response["LastModified"].timestamp()
        except Exception as exc:
            return _unread(exc, now)
        return judge(body, written_at, now)

    def client(self) -> Any:
        """The S3 client reads go through; made on first use."""
        if self._s3 is None:
            self._s3 = quick_s3_client()
        return self._s3


def judge(body: bytes, written_at: float, now: float) -> Sighting:
    """What a heartbeat written at `written_at` (epoch seconds) says at `now`."""
    try:
        beat = json.loads(body)
        state = beat["state"]
        functions = tuple(str(name) for name in beat.get("functions", []))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Sighting(Presence.UNKNOWN, "the lab's heartbeat is not readable", now)
    age = max(0.0, now - written_at)
    if state != "serving":
        detail = f"it stopped {_ago(age)}"
        return Sighting(Presence.OFFLINE, detail, now, functions, True, age)
    if age > OFFLINE_AFTER_SECONDS:
        detail = f"it was last heard from {_ago(age)}"
        return Sighting(Presence.OFFLINE, detail, now, functions, False, age)
    return Sighting(Presence.ONLINE, f"heard from {_ago(age)}", now, functions)


def choose_route(
    mode: Mode,
    sighting: Callable[[], Sighting],
    source: EventSource,
    event: Any = None,
    *,
    library: bool = False,
) -> Route:
    """The route of one invocation; the heartbeat is read only when it matters."""
    if mode is Mode.SYNC:
        return Route.WAIT
    if mode is Mode.ASYNC:
        return Route.QUEUE
    offline = sighting().presence is Presence.OFFLINE
    if mode is Mode.MIRROR:
        # A mirror is a view of live traffic: copies are not kept for a lab
        # that may come back hours later and run them all.
        return Route.IN_PLACE if offline else Route.MIRROR
    if not offline:
        return Route.WAIT
    if library:
        return Route.IN_PLACE
    return Route.QUEUE if is_asynchronous(source, event) else Route.REFUSE


def offline_message(sighting: Sighting, request_id: str, waited: bool = False) -> str:
    """Why an invocation was refused, and what to do, in one or two sentences.

    `waited`: the lab went away while the proxy waited for its answer.
    """
    what = (
        f"went offline ({sighting.detail}) before it answered request {request_id}"
        if waited
        else f"is offline ({sighting.detail}), so request {request_id} was not run"
    )
    return (
        f"The lab {what}. Start `mless run` to serve this function, or set its "
        "MLESS_MODE to async to queue its invocations for the lab."
    )


def quick_s3_client() -> Any:
    """An S3 client that gives up within seconds, for reads a caller waits on."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=READ_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": 2},
    )
    return boto3.client("s3", config=config)


def _trust_seconds(sighting: Sighting) -> float:
    if sighting.presence is Presence.ONLINE:
        return ONLINE_CACHE_SECONDS
    return OFFLINE_CACHE_SECONDS


def _unread(exc: Exception, now: float) -> Sighting:
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", type(exc).__name__))
    if code in _MISSING:
        detail = "no lab has served this stack yet"
        silence = float("inf")
        return Sighting(Presence.OFFLINE, detail, now, (), True, silence)
    return Sighting(Presence.UNKNOWN, f"its heartbeat could not be read: {code}", now)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
