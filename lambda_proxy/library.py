"""Library mode: a real function hands the lab only the events you pick.

    from lambda_proxy.library import forward_to_lab

    @forward_to_lab(when=lambda event: event.get("debug") is True)
    def handler(event, context):
        ...

Lambda calls the wrapper. An event that `when` selects (every event, without
`when`) goes the way the proxy sends it, by the function's mode (MLESS_MODE,
or `mode=`), except that where the proxy alone would queue it or refuse it
because the lab is offline, the wrapped handler runs here instead. So in the
default auto mode a selected event runs in the lab while the lab is online,
and in place while it is offline. Every other event runs in place at once,
without a look at the lab.

Where mless is not set up (no MLESS_REQUEST_QUEUE_URL: in the lab itself,
which passes a function none of mless's variables, or in unit tests), the
wrapper calls the handler directly. In Lambda the function needs
`lambda_proxy` on its path (the stack's proxy layer, `<NamePrefix>-proxy`),
the stack's MLESS_* variables, and the stack's ProxyAccessPolicy on its role.

A predicate that raises is logged and its event runs in place: a mistake in
choosing what to debug must not break the function.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from lambda_proxy.presence import Mode

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]
Predicate = Callable[[Any], Any]

# The variable whose presence says mless is set up for this function.
REQUEST_QUEUE_VARIABLE = "MLESS_REQUEST_QUEUE_URL"


def forward_to_lab(
    when: Predicate | None = None, *, mode: str | None = None
) -> Callable[[Handler], Handler]:
    """Wrap a handler so that the events `when` selects may run in the lab.

    `mode` overrides the function's MLESS_MODE (sync, async, mirror, auto);
    a name that is none of them raises ValueError at once.
    """
    chosen = None if mode is None else Mode.named(mode)

    def wrap(function: Handler) -> Handler:
        @functools.wraps(function)
        def handler(event: Any, context: Any) -> Any:
            if REQUEST_QUEUE_VARIABLE not in os.environ or not _selects(when, event):
                return function(event, context)
            # Imported here: where mless is not set up, boto3 is never loaded.
            from lambda_proxy.handler import environment_proxy

            proxy = environment_proxy()
            return proxy.forward(event, context, function, library=True, mode=chosen)

        return handler

    return wrap


def _selects(when: Predicate | None, event: Any) -> bool:
    if when is None:
        return True
    try:
        return bool(when(event))
    except Exception:
        logger.exception("The predicate of forward_to_lab failed; running in place")
        return False
