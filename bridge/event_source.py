"""Which AWS service sent an event: the classifier the proxy and the lab share.

It lives in `lambda_proxy.event_sources`, deployed with the proxy; this name
stays for the lab's modules that import it from here.
"""

from __future__ import annotations

from lambda_proxy.event_sources import EventSource, event_source, is_asynchronous

__all__ = ["EventSource", "event_source", "is_asynchronous"]
