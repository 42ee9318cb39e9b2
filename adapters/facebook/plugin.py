"""Plugin entry: settings ``[facebook]``, senders ``facebook`` (comments) and ``messenger``, the webhook route,
the ``facebook.webhook`` job and the ``facebook`` backfill worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.facebook.graph import GraphClient
from adapters.facebook.settings import FacebookSettings

if TYPE_CHECKING:
    from workers.runtime import Runtime

SETTINGS = {"facebook": FacebookSettings}


def graph_for(rt: Runtime) -> GraphClient:
    """The runtime's one Graph client (opened on first use, closed with the runtime)."""
    return rt.service("facebook.graph", lambda: GraphClient(lambda: rt.settings.facebook))


def setup(rt: Runtime) -> None:
    from adapters.facebook.backfill import facebook_worker
    from adapters.facebook.sender import CommentSender, MessengerSender
    from adapters.facebook.webhook import JOB_KIND, handle_webhook_job, setup_web

    graph = graph_for(rt)
    rt.channels["facebook"] = CommentSender(rt, graph)
    rt.channels["messenger"] = MessengerSender(rt, graph)
    rt.job_handlers[JOB_KIND] = handle_webhook_job
    rt.workers["facebook"] = facebook_worker
    rt.web_setups.append(setup_web)
