"""boto3 clients for the lab, from the normal credential chain or the local cloud.

botocore's DEBUG logs of the wire (request and response bodies, the string
it signs) carry credentials: the lab's own and, in the requests it
receives, the function role's. `quiet_wire_logs` keeps those three loggers
at INFO, so that even `--debug` never prints a credential.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoRegionError

from bridge.poller import POLL_WAIT_SECONDS

# Long polls hold a connection for POLL_WAIT_SECONDS; reads must outlast them.
_CONFIG = Config(
    max_pool_connections=128,
    read_timeout=POLL_WAIT_SECONDS + 10,
    connect_timeout=5,
    retries={"mode": "standard", "max_attempts": 5},
)

# The region of the local cloud, and of any local endpoint when none is set.
LOCAL_REGION = "us-east-1"

# The botocore loggers whose DEBUG lines show bodies, headers and signatures.
WIRE_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.auth")

# Which Clients made a client, so that a client for another service can be
# made the same way.
_MAKERS: weakref.WeakKeyDictionary[Any, Clients] = weakref.WeakKeyDictionary()


class Clients:
    """Creates each AWS client once and shares it between threads."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        access_key, secret_key = credentials or (None, None)
        self.session = boto3.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            profile_name=profile,
            region_name=region,
        )
        self.endpoint_url = endpoint_url
        quiet_wire_logs()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def region(self) -> str:
        """The region of every client: the one given, else the credential chain's.

        Against AWS itself a missing region is an error, as it is for the AWS
        CLI: guessing one would deploy into, or serve, the wrong region. A
        local endpoint answers in any region, so it gets us-east-1.
        """
        if self.session.region_name:
            return self.session.region_name
        if self.endpoint_url:
            return LOCAL_REGION
        raise NoRegionError()

    def client(self, service: str) -> Any:
        """The shared client for one service (boto3 clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                session: Any = self.session  # boto3's stubs want a literal name
                self._clients[service] = session.client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=_CONFIG,
                )
                _MAKERS[self._clients[service]] = self
            return self._clients[service]


def clients_of(client: Any, endpoint_url: str | None = None) -> Clients:
    """The Clients that made `client`, or new ones for its region and `endpoint_url`.

    New ones take credentials from boto3's normal chain.
    """
    maker = _MAKERS.get(client)
    if maker is not None:
        return maker
    return Clients(region=client.meta.region_name, endpoint_url=endpoint_url)


def quiet_wire_logs() -> None:
    """Keep botocore's wire logs, which show credentials, out of every log."""
    for name in WIRE_LOGGERS:
        wire_logger = logging.getLogger(name)
        if wire_logger.level < logging.INFO:
            wire_logger.setLevel(logging.INFO)
