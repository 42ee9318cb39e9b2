"""Parsed Facebook items → the ingest pipeline: downloads Messenger attachments, looks up names of new PSIDs,
skips what is already stored, records removed comments. Shared by the webhook job and the backfill worker."""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from adapters.facebook.graph import GraphClient, GraphError
from adapters.facebook.parse import Draft, Parsed
from inbox.domain import Identity, InboundAttachment
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

COMMENT_REMOVED = "facebook.comment_removed"
TYPE_DEFAULTS = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg", "file": "application/octet-stream"}


@dataclass
class Counts:
    ingested: int = 0
    duplicates: int = 0
    removed: int = 0
    ignored: int = 0


async def report_graph_error(rt: Runtime, exc: GraphError, channels: tuple[str, ...], what: str) -> None:
    """Token problems affect both channels (one Page token); throttling only the channel that hit it."""
    page = rt.settings.facebook.page_id or "?"
    if exc.auth_failed:
        for channel in ("facebook", "messenger"):
            await report_health(rt.store, channel, page, False,
                                f"El token de la Página venció o fue revocado ({what}): {exc.describe()}. "
                                f"Renová INBOX_FACEBOOK__PAGE_TOKEN.")
    elif exc.throttled:
        for channel in channels:
            await report_health(rt.store, channel, page, False,
                                f"Facebook limitó las llamadas ({what}): {exc.describe()}; se reintenta en "
                                f"{int(exc.retry_after_s or 0)} s")


async def ingest_parsed(rt: Runtime, graph: GraphClient, parsed: Parsed) -> Counts:
    counts = Counts(ignored=len(parsed.ignored))
    for draft in parsed.drafts:
        m = draft.inbound
        if await rt.store.message_exists(m.channel, m.account, m.external_id):
            counts.duplicates += 1  # a repeated delivery: no download, no lookup, no write
            continue
        await _complete(rt, graph, draft)
        outcome = await rt.pipeline.ingest(m)
        if outcome.status == "ingested":
            counts.ingested += 1
        elif outcome.status == "duplicate":
            counts.duplicates += 1
    for removal in parsed.removals:
        ticket_id = await rt.store.find_ticket_by_external_ids("facebook", [removal.comment_id])
        if ticket_id is not None:
            await rt.store.append_event(COMMENT_REMOVED, ticket_id, "system:facebook",
                                        {"comment_id": removal.comment_id, "post_id": removal.post_id})
            counts.removed += 1
    return counts


async def _complete(rt: Runtime, graph: GraphClient, draft: Draft) -> None:
    cfg = rt.settings.facebook
    m = draft.inbound
    if draft.needs_profile and cfg.messenger_profile_lookup and cfg.page_token:
        known = await rt.store.find_contact_by_identity(m.sender.kind, m.sender.value)
        if known is None:
            try:
                profile = await graph.request("GET", m.sender.value, params={"fields": "first_name,last_name"})
            except GraphError as exc:
                await report_graph_error(rt, exc, ("messenger",), "perfil de Messenger")
                log.info("no profile for a Messenger sender: %s", exc.describe())
            else:
                name = " ".join(p for p in (profile.get("first_name"), profile.get("last_name")) if p)
                if name:
                    m.sender = Identity(m.sender.kind, m.sender.value, display_name=name)
    for i, a in enumerate(draft.attachment_urls):
        kind, url = a.get("type") or "file", a["url"]
        name = a.get("name") or urlsplit(url).path.rsplit("/", 1)[-1] or f"adjunto-{i + 1}"
        ctype = mimetypes.guess_type(name)[0] or TYPE_DEFAULTS.get(kind, "application/octet-stream")
        if not cfg.download_attachments:
            m.attachments.append(InboundAttachment(name, ctype, None, 0, skipped="not_downloaded"))
            continue
        try:
            data, header_type = await graph.download(url, cfg.max_attachment_mb * 1024 * 1024,
                                                     cfg.attachment_timeout_s)
        except OverflowError:
            m.attachments.append(InboundAttachment(name, ctype, None, 0, skipped="too_large"))
        except Exception as exc:  # the URL stays in meta["fb_attachments"]; the message is never held back
            log.warning("Messenger attachment download failed: %s", type(exc).__name__)
            m.attachments.append(InboundAttachment(name, ctype, None, 0, skipped="download_failed"))
        else:
            ctype = (header_type or "").split(";")[0].strip() or ctype
            m.attachments.append(InboundAttachment(name, ctype, data, len(data)))
