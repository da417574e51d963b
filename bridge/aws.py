"""boto3 clients for the lab, from the normal credential chain or the local cloud."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from bridge.poller import POLL_WAIT_SECONDS

# Long polls hold a connection for POLL_WAIT_SECONDS; reads must outlast them.
_CONFIG = Config(
    max_pool_connections=128,
    read_timeout=POLL_WAIT_SECONDS + 10,
    connect_timeout=5,
    retries={"mode": "standard", "max_attempts": 5},
)


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
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def region(self) -> str:
        return self.session.region_name or "us-east-1"

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
            return self._clients[service]
