"""Plugin entry: settings section ``[x]``, the ``x`` channel sender and the ``x`` poller worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.x.client import XApi
from adapters.x.settings import XSettings

if TYPE_CHECKING:
    from workers.runtime import Runtime

SETTINGS = {"x": XSettings}


def api_for(rt: Runtime) -> XApi:
    """The runtime's one X client (opened on first use, closed with the runtime)."""
    return rt.service("x.api", lambda: XApi(lambda: rt.settings.x))


def setup(rt: Runtime) -> None:
    from adapters.x.poller import x_worker
    from adapters.x.sender import XSender

    rt.channels["x"] = XSender(rt, api_for(rt))
    rt.workers["x"] = x_worker
