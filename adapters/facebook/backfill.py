"""Backfill for missed webhooks: poll the Page feed (visitor posts and comments) and Messenger conversations since
the last seen time. Items already stored are skipped; the cursor (``cursors`` → ``facebook:<page>:backfill``) moves
only after everything fetched is committed, and each run re-reads ``backfill_overlap_s`` before it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from adapters.facebook.graph import GraphClient, GraphError
from adapters.facebook.ingest import Counts, ingest_parsed, report_graph_error
from adapters.facebook.parse import Parsed, from_graph_time, graph_conversation, graph_feed_post
from inbox.domain import utcnow
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

CURSORS = "cursors"
COMMENT_FIELDS = "id,message,from,created_time,parent{id}"
FEED_FIELDS = (f"id,message,from,created_time,updated_time,permalink_url,"
               f"comments.filter(stream).order(reverse_chronological).limit(100){{{COMMENT_FIELDS}}}")
MESSAGE_FIELDS = "id,message,from,to,created_time,attachments{id,mime_type,name,size,image_data,file_url,video_data}"
CONVERSATION_FIELDS = f"id,updated_time,messages.limit(50){{{MESSAGE_FIELDS}}}"


@dataclass
class BackfillResult:
    counts: Counts
    since: datetime
    error: str | None = None


def cursor_key(page_id: str) -> str:
    return f"facebook:{page_id}:backfill"


async def _pages(graph: GraphClient, path: str, params: dict[str, Any], max_pages: int,
                 stop_when: Any = None) -> list[dict[str, Any]]:
    """Follow ``paging.cursors.after`` (never ``paging.next``: that URL embeds the token and the real host)."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(max_pages):
        body = await graph.request("GET", path, params={**params, **({"after": after} if after else {})})
        data = [d for d in body.get("data") or [] if isinstance(d, dict)]
        items.extend(data)
        paging = body.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after")
        if not paging.get("next") or not after or (stop_when and any(stop_when(d) for d in data)):
            break
    return items


async def backfill_once(rt: Runtime, graph: GraphClient) -> BackfillResult:
    cfg = rt.settings.facebook
    page = cfg.page_id
    key = cursor_key(page)
    cursor = await rt.store.get_doc(CURSORS, key) or {}
    started = utcnow()
    last = from_graph_time(cursor.get("since")) if cursor.get("since") else None
    since = (last - timedelta(seconds=cfg.backfill_overlap_s)) if last else started - timedelta(
        hours=cfg.backfill_lookback_h)
    parsed = Parsed()
    try:
        posts = await _pages(graph, f"{page}/feed",
                             {"fields": FEED_FIELDS, "since": int(since.timestamp()), "limit": 25},
                             cfg.backfill_max_pages)
        for post in posts:
            parsed.drafts.extend(graph_feed_post(page, post, since))

        def older(conv: dict[str, Any]) -> bool:
            updated = from_graph_time(conv.get("updated_time"))
            return updated is not None and updated < since

        conversations = await _pages(graph, f"{page}/conversations",
                                     {"platform": "messenger", "fields": CONVERSATION_FIELDS, "limit": 25},
                                     cfg.backfill_max_pages, stop_when=older)
        for conv in conversations:
            if not older(conv):
                parsed.drafts.extend(graph_conversation(page, conv, since))
    except GraphError as exc:
        await report_graph_error(rt, exc, ("facebook", "messenger"), "backfill")
        if not exc.auth_failed and not exc.throttled:
            await report_health(rt.store, "facebook", page, False, f"Backfill de Facebook falló: {exc.describe()}")
        return BackfillResult(Counts(), since, exc.describe())
    parsed.drafts.sort(key=lambda d: d.inbound.sent_at or started)  # oldest first: roots open the tickets
    counts = await ingest_parsed(rt, graph, parsed)
    await rt.store.put_doc(CURSORS, key, {"since": started.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "at": utcnow().isoformat()})
    for channel in ("facebook", "messenger"):
        await report_health(rt.store, channel, page, True)
    return BackfillResult(counts, since)


async def facebook_worker(rt: Runtime, stop: asyncio.Event) -> None:
    """``rt.workers["facebook"]``: backfill every ``facebook.backfill_interval_s`` until ``stop`` is set."""
    from adapters.facebook.plugin import graph_for

    graph = graph_for(rt)
    while not stop.is_set():
        cfg = rt.settings.facebook
        if not cfg.page_id or not cfg.page_token:
            log.warning("facebook backfill idle: facebook.page_id or INBOX_FACEBOOK__PAGE_TOKEN missing")
        else:
            try:
                result = await backfill_once(rt, graph)
                if result.counts.ingested:
                    log.info("facebook backfill recovered %d missed items", result.counts.ingested)
            except Exception:
                log.exception("facebook backfill failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rt.settings.facebook.backfill_interval_s)
