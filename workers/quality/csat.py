"""Satisfaction surveys (CSAT): one question (1–5) and an optional comment, sent when a ticket is resolved.

The survey goes out through the ticket's channel by the outbox (a stored outgoing message and its ``deliver`` job,
like ``workers.outbox.queue_reply``): a signed link by e-mail, a short message with the link on X/Messenger. The link
carries the ticket id, an expiry and an HMAC made with the web secret key (``web.secret_key`` or the key generated
per data directory), so the public answer page needs no login and no personal data travels in the URL. An answer is
stored in the ``csat`` documents (key: ticket id), as an event (``csat.answered``) and on the ticket (``meta.csat``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from inbox.domain import (
    EventKind,
    IdentityKind,
    Job,
    Message,
    Ticket,
    TicketStatus,
    utcnow,
)
from inbox.store.base import JobSpec, TicketChanges
from workers.outbox import queue_reply
from workers.quality.sla import SURVEY_KIND

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR = "system:csat"
COLLECTION = "csat"
EV_SENT = "csat.sent"
EV_ANSWERED = "csat.answered"
MAX_COMMENT = 2000
SHORT_CHANNELS = frozenset({"x", "messenger", "facebook"})


class InvalidLink(ValueError):
    """A survey link that is malformed, forged or expired (``expired`` tells which)."""

    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.expired = expired


def secret_key(rt: Runtime) -> bytes:
    key = rt.services.get("quality.secret")
    if key is None:
        from web.auth import load_secret_key  # the same key the web app signs sessions with

        key = rt.services["quality.secret"] = load_secret_key(rt.settings.web.secret_key, rt.data_dir)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(secret: bytes, ticket_id: str, expires: int) -> str:
    return _b64(hmac.new(secret, f"csat\x1f{ticket_id}\x1f{expires}".encode(), hashlib.sha256).digest()[:18])


def sign_token(secret: bytes, ticket_id: str, expires: int) -> str:
    return f"{ticket_id}.{expires}.{_mac(secret, ticket_id, expires)}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> str:
    """The ticket id of a valid token; raises InvalidLink."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(token) > 200:
        raise InvalidLink("malformed")
    ticket_id, expires_s, mac = parts
    expected = _mac(secret, ticket_id, int(expires_s))
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise InvalidLink("bad signature")
    if int(expires_s) < (now if now is not None else time.time()):
        raise InvalidLink("expired", expired=True)
    return ticket_id


def base_url(rt: Runtime) -> str:
    w = rt.settings.web
    return (w.base_url or f"http://{w.host}:{w.port}").rstrip("/")


def survey_link(rt: Runtime, ticket_id: str, now: datetime | None = None) -> str:
    now = now or utcnow()
    expires = int((now + timedelta(days=rt.settings.csat.link_valid_days)).timestamp())
    return f"{base_url(rt)}/encuesta/{sign_token(secret_key(rt), ticket_id, expires)}"


def send_job_spec(ticket_id: str, not_before: datetime | None = None) -> JobSpec:
    return JobSpec("csat_send", {"ticket_id": ticket_id}, not_before=not_before, dedupe_key=f"csat_send:{ticket_id}")


async def _survey_channel(rt: Runtime, ticket: Ticket) -> str | None:
    channels = rt.settings.csat.channels
    if ticket.channel not in channels:
        return None
    if ticket.channel == "web":  # the contact form: answer by e-mail when the person gave an address
        contact = await rt.store.get_contact(ticket.contact_id)
        if contact is None or not any(i.kind == IdentityKind.EMAIL for i in contact.identities):
            return None
        return "email" if "email" in rt.channels else None
    return ticket.channel if ticket.channel in rt.channels else None


async def send_survey(rt: Runtime, ticket_id: str) -> str:
    """Send the survey of a resolved ticket once. Returns what happened: sent | skipped:<reason>."""
    s = rt.settings.csat
    ticket = await rt.store.get_ticket(ticket_id)
    if ticket is None:
        return "skipped:gone"
    if not s.enabled:
        return "skipped:disabled"
    if ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        return "skipped:reopened"
    if ticket.meta.get("csat_sent_at"):
        return "skipped:already_sent"
    if ticket.meta.get("anonymized_at"):
        return "skipped:anonymized"
    if s.require_reply and ticket.first_response_at is None:
        return await _skip(rt, ticket, "no_reply")
    channel = await _survey_channel(rt, ticket)
    if channel is None:
        return await _skip(rt, ticket, "channel")
    link = survey_link(rt, ticket.id)
    template = s.short_text if channel in SHORT_CHANNELS else s.email_text
    text = template.format(link=link, number=ticket.number, days=s.link_valid_days)
    await _queue_survey(rt, ticket, channel, text)
    now = utcnow().isoformat()
    await rt.store.update_ticket(ticket.id, TicketChanges(meta={"csat_sent_at": now}), ACTOR)
    await rt.store.append_event(EV_SENT, ticket.id, ACTOR, {"channel": channel})
    return "sent"


async def _queue_survey(rt: Runtime, ticket: Ticket, channel: str, text: str) -> Message:
    """A survey is not an answer: it leaves through the outbox without marking the ticket's first response."""
    return await queue_reply(rt, ticket, text, ACTOR, channel=channel, meta={"kind": SURVEY_KIND},
                             request_id=f"csat:{ticket.id}", first_response=False)


async def _skip(rt: Runtime, ticket: Ticket, reason: str) -> str:
    if ticket.meta.get("csat_skipped") != reason:
        await rt.store.update_ticket(ticket.id, TicketChanges(meta={"csat_skipped": reason}), ACTOR)
    return f"skipped:{reason}"


async def record_answer(rt: Runtime, ticket_id: str, rating: int, comment: str = "") -> dict[str, Any]:
    """Store (or replace) the answer to a ticket's survey."""
    if not 1 <= int(rating) <= 5:
        raise ValueError("rating must be 1..5")
    ticket = await rt.store.get_ticket(ticket_id)
    if ticket is None:
        raise LookupError(ticket_id)
    comment = (comment or "").strip()[:MAX_COMMENT]
    now = utcnow().isoformat()
    previous = await rt.store.get_doc(COLLECTION, ticket_id)
    doc = {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "rating": int(rating),
        "comment": comment,
        "channel": ticket.channel,
        "queue": ticket.queue,
        "agency": ticket.tags["agency"].value if "agency" in ticket.tags else None,
        "tramite": ticket.tags["tramite"].value if "tramite" in ticket.tags else None,
        "assignee": ticket.assignee,
        "answered_at": now,
        "first_answered_at": (previous or {}).get("first_answered_at", now),
    }
    await rt.store.put_doc(COLLECTION, ticket.id, doc)
    await rt.store.update_ticket(ticket.id, TicketChanges(meta={"csat": {"rating": int(rating), "answered_at": now}}),
                                 ACTOR)
    await rt.store.append_event(EV_ANSWERED, ticket.id, ACTOR,
                                {"rating": int(rating), "comment": bool(comment), "changed": previous is not None})
    return doc


async def send_job(rt: Runtime, job: Job) -> None:
    outcome = await send_survey(rt, job.payload["ticket_id"])
    log.info("csat survey for %s: %s", job.payload["ticket_id"], outcome)


DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


def is_resolution(event_kind: str, data: dict[str, Any]) -> bool:
    """A status change that ends the work on a ticket (to resolved, or straight to closed)."""
    return event_kind == EventKind.STATUS and data.get("to") in DONE and data.get("from") not in DONE
