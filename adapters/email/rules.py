"""Email-specific pipeline pieces: a dedupe step for Message-ID collisions, thread rules beyond the generic ones,
and the auto-acknowledgement job planner.

Thread rules, in order (generic ones from inbox/ingest.py first):
  references → conversation → ticket_number → email_ticket_tag_correspondent → email_recent_subject → new ticket
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import TYPE_CHECKING

from inbox.domain import Direction, Message, Ticket, TicketFilter, TicketStatus, utcnow
from inbox.store.base import JobSpec

if TYPE_CHECKING:
    from adapters.email.settings import EmailSettings
    from inbox.ingest import IngestContext, JobPlanner, Pipeline, ThreadRule

CHANNEL = "email"
ACK_JOB = "email_ack"
_PREFIX = re.compile(r"^\s*(?:re|rv|fw|fwd|aw|wg|sv|vs|tr|res|enc|antw|reenv(?:iado)?)\s*(?:\[\d+\])?\s*:\s*",
                     re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|vs|res|antw|rv|fw|fwd|wg|tr|enc)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)
_TAG = re.compile(r"\s*\[#\d{1,9}\]\s*")


def normalize_subject(subject: str | None) -> str:
    """The subject without reply/forward prefixes and ticket tags, case- and accent-folded."""
    s = subject or ""
    while True:
        s2 = _PREFIX.sub("", _TAG.sub(" ", s)).strip()
        if s2 == s:
            break
        s = s2
    s = unicodedata.normalize("NFKD", s.casefold())
    return re.sub(r"\s+", " ", "".join(ch for ch in s if not unicodedata.combining(ch))).strip()


def same_person_name(a: str | None, b: str | None) -> bool:
    """Display names that are clearly one person: at least two words, equal after folding case and accents."""
    na, nb = normalize_subject(a), normalize_subject(b)
    return bool(na) and na == nb and len(na.split()) >= 2


# -- dedupe step ---------------------------------------------------------------------------------------------------
async def email_message_id(p: Pipeline, ctx: IngestContext) -> None:
    """Before the generic dedupe: decide what a known Message-ID means.

    - same Message-ID and same content hash in this mailbox → the generic dedupe drops it (a redelivery, a resync);
    - same in another of our mailboxes (a Cc to two of our addresses) → duplicate;
    - one of our own outgoing messages coming back (a loop) → duplicate;
    - same Message-ID, different content → a different mail: its external id becomes ``<Message-ID>#<hash16>`` so
      neither is lost (deterministic, so its own redelivery still dedupes).
    A stored message without a content hash (anonymized by retention, or older) counts as the same mail."""
    m = ctx.inbound
    if m.channel != CHANNEL:
        return
    ticket_id = await p.store.find_ticket_by_external_ids(CHANNEL, [m.external_id])
    if ticket_id is None:
        return
    digest = m.meta.get("content_hash")
    for stored in await p.store.list_messages(ticket_id):
        if stored.channel != CHANNEL or stored.external_id != m.external_id:
            continue
        if stored.direction != Direction.IN:
            m.meta["duplicate_of"] = stored.id
            ctx.duplicate = True
            return
        other = stored.meta.get("content_hash")
        if other is None or digest is None or other == digest:
            if stored.account != m.account:
                m.meta["duplicate_of"] = stored.id
                ctx.duplicate = True
            return
        m.meta["message_id_collision"] = stored.id
        m.external_id = f"{m.external_id}#{digest[:16]}"
        return


# -- thread rules --------------------------------------------------------------------------------------------------
def _correspondents(messages: list[Message]) -> set[str]:
    """Addresses that took part in a ticket's email conversation (senders, Reply-To and Cc of its mail)."""
    known: set[str] = set()
    for msg in messages:
        if msg.channel != CHANNEL:
            continue
        if msg.direction == Direction.IN and msg.author is not None:
            known.add(msg.author.value.lower())
        for key in ("reply_to", "cc", "recipients"):
            for entry in msg.meta.get(key) or []:
                address = entry.get("address") if isinstance(entry, dict) else entry
                if address:
                    known.add(str(address).lower())
    return known


async def by_ticket_tag_correspondent(p: Pipeline, ctx: IngestContext) -> Ticket | None:
    """"[#N]" from an address that is not on the ticket's contact but took part in its conversation (the Reply-To
    we answered, a Cc), or whose display name is the contact's name: a second address of the same person."""
    m = ctx.inbound
    if m.channel != CHANNEL or m.hints.ticket_number is None:
        return None
    ticket = await p.store.get_ticket_by_number(m.hints.ticket_number)
    if ticket is None:
        return None
    if m.sender.key[1] in _correspondents(await p.store.list_messages(ticket.id)):
        return ticket
    contact = await p.store.get_contact(ticket.contact_id)
    if contact is not None and same_person_name(contact.name, m.sender.display_name):
        return ticket
    return None


def recent_subject_rule(days: int) -> ThreadRule:
    async def by_recent_subject(p: Pipeline, ctx: IngestContext) -> Ticket | None:
        """A "Re:"/"RV:" mail whose client dropped In-Reply-To, References and the tag (Outlook does): the same
        contact's open email ticket with the same subject, active within ``days``."""
        m = ctx.inbound
        if m.channel != CHANNEL or ctx.contact is None or ctx.contact_is_new or not m.subject:
            return None
        if not _REPLY_PREFIX.match(m.subject):
            return None
        wanted = normalize_subject(m.subject)
        if not wanted:
            return None
        cutoff = utcnow() - timedelta(days=days)
        page = await p.store.list_tickets(TicketFilter(contact_id=ctx.contact.id), sort="last_activity", limit=25)
        for ticket in page.items:
            if ticket.last_activity_at < cutoff:
                break
            if ticket.channel == CHANNEL and ticket.status != TicketStatus.CLOSED and \
                    normalize_subject(ticket.subject) == wanted:
                return ticket
        return None

    return by_recent_subject


# -- auto-acknowledgement --------------------------------------------------------------------------------------------
def ack_planner(settings: EmailSettings) -> JobPlanner:
    def plan_email_ack(p: Pipeline, ctx: IngestContext) -> list[JobSpec]:
        """A new ticket from a person's mail (never an auto-reply, bounce, our own mail or a list) gets an
        acknowledgement when its mailbox has auto_acknowledge on."""
        m = ctx.inbound
        if m.channel != CHANNEL or not ctx.ticket_is_new or ctx.automated or "bulk" in m.flags:
            return []
        account = settings.account(m.account)
        if account is None or not account.auto_acknowledge or ctx.ticket is None:
            return []
        return [JobSpec(ACK_JOB, {"ticket_id": ctx.ticket.id, "account": m.account},
                        dedupe_key=f"{ACK_JOB}:{ctx.ticket.id}")]

    return plan_email_ack
