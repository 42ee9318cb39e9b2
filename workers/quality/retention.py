"""Data protection (Uruguay's Ley 18.331): retention policies, and export or erasure of one person's data.

- Retention: per channel, tickets with no activity for N months are closed and anonymized (``anonymize``: personal
  data replaced by a placeholder, raw inputs and attachment files deleted, the contact anonymized once all its tickets
  are) or deleted (``delete``: tickets and messages removed, the contact erased once it has no ticket left). Ticket
  metadata (channel, tags, queue, times, CSAT rating) stays for statistics.
- Export: everything stored about one contact, as JSON.
- Erase: the contact, its identities, tickets, messages (search index included), raw inputs, attachment files, survey
  answers, training labels and notifications about its tickets.

Every run and request is recorded as an event by the store (``ticket.anonymized``, ``contact.erased``, ...)."""

from __future__ import annotations

import calendar as _cal
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from inbox.domain import Contact, Message, Ticket, TicketFilter, utcnow
from inbox.store.base import NotFound

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR = "system:retention"
STATE = ("quality_state", "retention")


def months_before(now: datetime, months: int) -> datetime:
    y, m = divmod(now.year * 12 + (now.month - 1) - months, 12)
    month = m + 1
    day = min(now.day, _cal.monthrange(y, month)[1])
    return now.replace(year=y, month=month, day=day)


async def all_tickets(rt: Runtime, flt: TicketFilter | None = None, sort: str = "created") -> list[Ticket]:
    out: list[Ticket] = []
    cursor = None
    while True:
        page = await rt.store.list_tickets(flt, sort=sort, cursor=cursor, limit=500)
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


def _attachment_refs(messages: list[Message]) -> set[str]:
    return {a.sha256 for m in messages for a in m.attachments if a.sha256}


async def _drop_files(rt: Runtime, raw_refs: list[str], attachment_refs: set[str]) -> tuple[int, int]:
    raw = sum(1 for ref in raw_refs if rt.archive.delete(ref))
    unused = attachment_refs - await rt.store.attachment_refs_in_use(sorted(attachment_refs)) if attachment_refs \
        else set()
    att = sum(1 for ref in sorted(unused) if rt.attachments.delete(ref))
    return raw, att


async def _drop_ticket_docs(rt: Runtime, ticket_ids: set[str], keep_csat_rating: bool) -> None:
    placeholder = rt.settings.retention.placeholder
    for tid in ticket_ids:
        await rt.store.delete_doc("labels", tid)
        doc = await rt.store.get_doc("csat", tid)
        if doc is not None:
            if keep_csat_rating:
                if doc.get("comment"):
                    await rt.store.put_doc("csat", tid, {**doc, "comment": placeholder, "anonymized": True})
            else:
                await rt.store.delete_doc("csat", tid)
    if ticket_ids:
        for key, doc in await rt.store.list_docs("notifications", limit=1_000_000):
            if doc.get("ticket_id") in ticket_ids:
                if keep_csat_rating:
                    if doc.get("subject"):
                        await rt.store.put_doc("notifications", key, {**doc, "subject": placeholder})
                else:
                    await rt.store.delete_doc("notifications", key)


async def anonymize_ticket(rt: Runtime, ticket: Ticket, actor: str = ACTOR) -> dict[str, int]:
    placeholder = rt.settings.retention.placeholder
    messages = await rt.store.list_messages(ticket.id)
    atts = _attachment_refs(messages)
    raw_refs = await rt.store.anonymize_ticket(ticket.id, actor, placeholder)
    raw, att = await _drop_files(rt, raw_refs, atts)
    await _drop_ticket_docs(rt, {ticket.id}, keep_csat_rating=True)
    contact_done = 0
    others = await all_tickets(rt, TicketFilter(contact_id=ticket.contact_id))
    if all(t.meta.get("anonymized_at") for t in others):
        contact = await rt.store.get_contact(ticket.contact_id)
        if contact is not None and (contact.identities or contact.name != placeholder):
            await rt.store.anonymize_contact(ticket.contact_id, actor, placeholder)
            contact_done = 1
    return {"tickets": 1, "raw_files": raw, "attachment_files": att, "contacts": contact_done}


async def delete_ticket(rt: Runtime, ticket: Ticket, actor: str = ACTOR) -> dict[str, int]:
    messages = await rt.store.list_messages(ticket.id)
    atts = _attachment_refs(messages)
    raw_refs = await rt.store.delete_ticket(ticket.id, actor)
    raw, att = await _drop_files(rt, raw_refs, atts)
    await _drop_ticket_docs(rt, {ticket.id}, keep_csat_rating=False)
    contact_done = 0
    others = await all_tickets(rt, TicketFilter(contact_id=ticket.contact_id))
    contact = await rt.store.get_contact(ticket.contact_id)
    if contact is not None and not others:
        await rt.store.erase_contact(ticket.contact_id, actor)
        contact_done = 1
    elif contact is not None and all(t.meta.get("anonymized_at") for t in others) and contact.identities:
        await rt.store.anonymize_contact(ticket.contact_id, actor, rt.settings.retention.placeholder)
        contact_done = 1
    return {"tickets": 1, "raw_files": raw, "attachment_files": att, "contacts": contact_done}


def policy_for_channel(rt: Runtime, channel: str) -> Any:
    best = None
    for p in rt.settings.retention.policies:
        if p.channel == channel:
            return p
        if p.channel == "*" and best is None:
            best = p
    return best


async def due_for_retention(rt: Runtime, now: datetime | None = None) -> list[tuple[Ticket, Any]]:
    """(ticket, policy) for every ticket past its channel's retention period and not yet handled."""
    now = now or utcnow()
    if not rt.settings.retention.policies:
        return []
    out = []
    for t in await all_tickets(rt, sort="last_activity"):
        if t.meta.get("anonymized_at"):
            continue
        policy = policy_for_channel(rt, t.channel)
        if policy is not None and t.last_activity_at < months_before(now, policy.months):
            out.append((t, policy))
    return out


async def run_retention(rt: Runtime, now: datetime | None = None, dry_run: bool = False,
                        force: bool = False) -> dict[str, int]:
    """Apply the retention policies once (even when ``retention.enabled`` is false if ``force``)."""
    totals = {"anonymized": 0, "deleted": 0, "raw_files": 0, "attachment_files": 0, "contacts": 0}
    if not (rt.settings.retention.enabled or force):
        return totals
    due = await due_for_retention(rt, now)
    for ticket, policy in due[: rt.settings.retention.batch_size if not force else None]:
        if dry_run:
            totals["anonymized" if policy.action == "anonymize" else "deleted"] += 1
            continue
        current = await rt.store.get_ticket(ticket.id)
        if current is None:
            continue
        try:
            if policy.action == "delete":
                r = await delete_ticket(rt, current)
                totals["deleted"] += 1
            else:
                r = await anonymize_ticket(rt, current)
                totals["anonymized"] += 1
        except NotFound:
            continue
        for k in ("raw_files", "attachment_files", "contacts"):
            totals[k] += r[k]
    if not dry_run:
        await rt.store.put_doc(*STATE, {"last_run": (now or utcnow()).isoformat(), **totals})
    if any(totals.values()):
        log.info("retention%s: %s", " (dry run)" if dry_run else "", totals)
    return totals


# -- one person ----------------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def contact_json(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "created_at": _iso(c.created_at),
        "merged_into": c.merged_into,
        "identities": [{"kind": i.kind, "value": i.value, "display_name": i.display_name, "handle": i.handle}
                       for i in c.identities],
    }


def ticket_export(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "number": t.number,
        "status": t.status,
        "channel": t.channel,
        "subject": t.subject,
        "tags": {k: v.to_dict() for k, v in t.tags.items()},
        "queue": t.queue,
        "assignee": t.assignee,
        "priority": t.priority,
        "created_at": _iso(t.created_at),
        "first_response_at": _iso(t.first_response_at),
        "resolved_at": _iso(t.resolved_at),
        "last_activity_at": _iso(t.last_activity_at),
    }


def message_export(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction,
        "channel": m.channel,
        "account": m.account,
        "external_id": m.external_id,
        "author": ({"kind": m.author.kind, "value": m.author.value, "name": m.author.display_name}
                   if m.author else None),
        "author_user": m.author_user,
        "subject": m.subject,
        "text": m.text,
        "html": m.html,
        "attachments": [a.to_dict() for a in m.attachments],
        "sent_at": _iso(m.sent_at),
        "received_at": _iso(m.received_at),
        "delivery_status": m.delivery_status,
        "flags": m.flags,
    }


async def export_contact(rt: Runtime, contact_id: str) -> dict[str, Any]:
    """Everything stored about one person (Ley 18.331, right of access)."""
    contact = await rt.store.get_contact(contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id}")
    tickets = await all_tickets(rt, TicketFilter(contact_id=contact_id))
    out_tickets = []
    for t in sorted(tickets, key=lambda t: t.number):
        item = ticket_export(t)
        item["messages"] = [message_export(m) for m in await rt.store.list_messages(t.id)]
        answer = await rt.store.get_doc("csat", t.id)
        if answer is not None:
            item["survey"] = {k: answer.get(k) for k in ("rating", "comment", "answered_at")}
        out_tickets.append(item)
    return {"exported_at": utcnow().isoformat(), "contact": contact_json(contact), "tickets": out_tickets}


async def erase_contact(rt: Runtime, contact_id: str, actor: str) -> dict[str, int]:
    """Erase one person's data everywhere: store (search index included), raw archive, attachments, documents."""
    contact = await rt.store.get_contact(contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id}")
    tickets = await all_tickets(rt, TicketFilter(contact_id=contact_id))
    atts: set[str] = set()
    for t in tickets:
        atts |= _attachment_refs(await rt.store.list_messages(t.id))
    raw_refs = await rt.store.erase_contact(contact_id, actor)
    raw, att = await _drop_files(rt, raw_refs, atts)
    await _drop_ticket_docs(rt, {t.id for t in tickets}, keep_csat_rating=False)
    log.info("erased contact %s: %d tickets, %d raw files, %d attachment files", contact_id, len(tickets), raw, att)
    return {"tickets": len(tickets), "raw_files": raw, "attachment_files": att}
