"""The ingest pipeline: an ordered list of small named steps that turn an InboundMessage into stored ticket state.

archive_raw → dedupe → flag_auto_reply → resolve_contact → thread → plan_jobs → commit

Every step but ``commit`` only reads or decides; ``commit`` writes everything in one store call, so a crash at any
point leaves either nothing or the whole message, and feeding the same input again completes or dedupes it.
Ids of new contacts, tickets and messages are derived from the input, which keeps retries idempotent on MongoDB.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from inbox.archive import Archive
from inbox.domain import (
    Contact,
    Direction,
    EventKind,
    Identity,
    InboundMessage,
    Message,
    Ticket,
    TicketStatus,
    stable_id,
    utcnow,
)
from inbox.settings import IngestSettings
from inbox.store.base import IngestPlan, IngestResult, JobSpec, Store

log = logging.getLogger(__name__)

# Flags that mark machine-generated mail: stored on the ticket, never acknowledged, never reopen a ticket.
AUTOMATED_FLAGS = frozenset({"auto_reply", "bounce", "own_message", "loop"})


@dataclass
class IngestContext:
    inbound: InboundMessage
    raw_ref: str | None = None
    duplicate: bool = False
    contact: Contact | None = None
    contact_is_new: bool = False
    new_identities: list[Identity] = field(default_factory=list)
    ticket: Ticket | None = None
    ticket_is_new: bool = False
    thread_rule: str | None = None  # which threading rule matched
    reopen: bool = False
    jobs: list[JobSpec] = field(default_factory=list)
    result: IngestResult | None = None

    @property
    def automated(self) -> bool:
        return bool(AUTOMATED_FLAGS.intersection(self.inbound.flags))


Step = Callable[["Pipeline", IngestContext], Awaitable[None]]
ThreadRule = Callable[["Pipeline", IngestContext], Awaitable[Ticket | None]]
JobPlanner = Callable[["Pipeline", IngestContext], list[JobSpec]]


@dataclass
class Outcome:
    status: str  # ingested | duplicate | quarantined
    ticket_number: int | None = None
    ticket_id: str | None = None
    message_id: str | None = None
    raw_ref: str | None = None
    error: str | None = None


# -- steps ---------------------------------------------------------------------------------------------------------
async def archive_raw(p: Pipeline, ctx: IngestContext) -> None:
    ctx.raw_ref = p.archive.put(ctx.inbound.raw)


async def dedupe(p: Pipeline, ctx: IngestContext) -> None:
    m = ctx.inbound
    ctx.duplicate = await p.store.message_exists(m.channel, m.account, m.external_id)


async def flag_auto_reply(p: Pipeline, ctx: IngestContext) -> None:
    """Adapters' parsers set channel-specific flags; here the generic markers in metadata are folded in."""
    meta = ctx.inbound.meta
    if meta.get("auto_submitted") and "auto_reply" not in ctx.inbound.flags:
        ctx.inbound.flags.append("auto_reply")


async def resolve_contact(p: Pipeline, ctx: IngestContext) -> None:
    m = ctx.inbound
    candidates = [m.sender.normalized(), *(i.normalized() for i in m.extra_identities)]
    contact = None
    for ident in candidates:
        contact = await p.store.find_contact_by_identity(ident.kind, ident.value)
        if contact is not None:
            break
    if contact is None:
        key = m.sender.key
        ctx.contact = Contact(
            id=stable_id("c", *key),
            name=m.sender.display_name or m.sender.handle,
            identities=[candidates[0]],
        )
        ctx.contact_is_new = True
        contact = ctx.contact
    else:
        ctx.contact = contact
    owned = {i.key for i in contact.identities}
    for ident in candidates:
        if ident.key in owned:
            continue
        other = await p.store.find_contact_by_identity(ident.kind, ident.value)
        if other is None:  # never steal an identity that belongs to someone else
            if ctx.contact_is_new:
                contact.identities.append(ident)
            else:
                ctx.new_identities.append(ident)
            owned.add(ident.key)


async def by_references(p: Pipeline, ctx: IngestContext) -> Ticket | None:
    hints = ctx.inbound.hints
    ids = [i for i in [hints.in_reply_to, *reversed(hints.references)] if i]
    ticket_id = await p.store.find_ticket_by_external_ids(ctx.inbound.channel, ids)
    return await p.store.get_ticket(ticket_id) if ticket_id else None


async def by_conversation(p: Pipeline, ctx: IngestContext) -> Ticket | None:
    m = ctx.inbound
    if not m.hints.conversation_id:
        return None
    ticket_id = await p.store.find_ticket_by_conversation(m.channel, m.account, m.hints.conversation_id)
    return await p.store.get_ticket(ticket_id) if ticket_id else None


async def by_ticket_number(p: Pipeline, ctx: IngestContext) -> Ticket | None:
    number = ctx.inbound.hints.ticket_number
    if number is None:
        return None
    ticket = await p.store.get_ticket_by_number(number)
    if ticket is None:
        return None
    if p.settings.allow_any_sender_ticket_tag:
        return ticket
    assert ctx.contact is not None
    # Accepted when the sender is one of the ticket's contact's identities (a second address of the same person
    # counts once it is on the contact), so a stranger cannot inject mail into someone else's ticket.
    if ticket.contact_id == ctx.contact.id and not ctx.contact_is_new:
        return ticket
    return None


DEFAULT_THREAD_RULES: list[tuple[str, ThreadRule]] = [
    ("references", by_references),
    ("conversation", by_conversation),
    ("ticket_number", by_ticket_number),
]


async def thread(p: Pipeline, ctx: IngestContext) -> None:
    m = ctx.inbound
    assert ctx.contact is not None
    for name, rule in p.thread_rules:
        ticket = await rule(p, ctx)
        if ticket is not None and ticket.status != TicketStatus.CLOSED:
            ctx.ticket, ctx.thread_rule = ticket, name
            ctx.reopen = (
                p.settings.reopen_resolved
                and ticket.status in (TicketStatus.RESOLVED, TicketStatus.PENDING)
                and not ctx.automated
            )
            return
    ctx.ticket = Ticket(
        id=stable_id("t", m.channel, m.account, m.external_id),
        number=0,
        status=TicketStatus.NEW,
        channel=m.channel,
        contact_id=ctx.contact.id,
        subject=m.subject,
        created_at=m.sent_at or utcnow(),
        meta={"account": m.account},
    )
    ctx.ticket_is_new = True
    ctx.thread_rule = "new"


def plan_triage(p: Pipeline, ctx: IngestContext) -> list[JobSpec]:
    if not ctx.ticket_is_new or ctx.automated:
        return []
    assert ctx.ticket is not None
    return [JobSpec("triage", {"ticket_id": ctx.ticket.id}, dedupe_key=f"triage:{ctx.ticket.id}")]


async def plan_jobs(p: Pipeline, ctx: IngestContext) -> None:
    for planner in p.job_planners:
        ctx.jobs.extend(planner(p, ctx))


async def commit(p: Pipeline, ctx: IngestContext) -> None:
    m, contact, ticket = ctx.inbound, ctx.contact, ctx.ticket
    assert contact is not None and ticket is not None
    message = Message(
        id=stable_id("m", m.channel, m.account, m.external_id),
        ticket_id=ticket.id,
        direction=Direction.IN,
        channel=m.channel,
        account=m.account,
        external_id=m.external_id,
        author=m.sender,
        text=m.text,
        html=m.html,
        subject=m.subject,
        attachments=p.store_attachments(m),
        raw_ref=ctx.raw_ref,
        sent_at=m.sent_at,
        received_at=utcnow(),
        flags=list(m.flags),
        meta={**m.meta, "thread_rule": ctx.thread_rule},
    )
    plan = IngestPlan(
        message=message,
        contact=contact,
        contact_is_new=ctx.contact_is_new,
        new_identities=ctx.new_identities,
        ticket=ticket,
        ticket_is_new=ctx.ticket_is_new,
        reopen=ctx.reopen,
        jobs=ctx.jobs,
        conversation_id=m.hints.conversation_id,
    )
    ctx.result = await p.store.commit_inbound(plan)
    ctx.duplicate = ctx.result.duplicate


DEFAULT_STEPS: list[tuple[str, Step]] = [
    ("archive_raw", archive_raw),
    ("dedupe", dedupe),
    ("flag_auto_reply", flag_auto_reply),
    ("resolve_contact", resolve_contact),
    ("thread", thread),
    ("plan_jobs", plan_jobs),
    ("commit", commit),
]


class Pipeline:
    def __init__(
        self,
        store: Store,
        archive: Archive,
        settings: IngestSettings | None = None,
        attachment_archive: Archive | None = None,
    ):
        self.store = store
        self.archive = archive
        self.attachments = attachment_archive or archive
        self.settings = settings or IngestSettings()
        self.steps: list[tuple[str, Step]] = list(DEFAULT_STEPS)
        self.thread_rules: list[tuple[str, ThreadRule]] = list(DEFAULT_THREAD_RULES)
        self.job_planners: list[JobPlanner] = [plan_triage]

    def insert_step(self, name: str, step: Step, *, before: str | None = None, after: str | None = None) -> None:
        names = [n for n, _ in self.steps]
        index = names.index(before) if before else names.index(after) + 1 if after else len(names)
        self.steps.insert(index, (name, step))

    def insert_thread_rule(self, name: str, rule: ThreadRule, *, before: str | None = None) -> None:
        names = [n for n, _ in self.thread_rules]
        index = names.index(before) if before else len(names)
        self.thread_rules.insert(index, (name, rule))

    def store_attachments(self, m: InboundMessage) -> list[Any]:
        from inbox.domain import Attachment

        out = []
        for a in m.attachments:
            sha = self.attachments.put(a.data) if a.data is not None and not a.skipped else None
            out.append(Attachment(a.filename, a.content_type, a.size, sha, a.content_id, a.skipped))
        return out

    async def ingest(self, inbound: InboundMessage) -> Outcome:
        ctx = IngestContext(inbound)
        for _name, step in self.steps:
            await step(self, ctx)
            if ctx.duplicate:
                break
        if ctx.duplicate:
            existing = ctx.result
            return Outcome("duplicate", existing.ticket_number if existing else None,
                           existing.ticket_id if existing else None, raw_ref=ctx.raw_ref)
        assert ctx.result is not None
        return Outcome("ingested", ctx.result.ticket_number, ctx.result.ticket_id, ctx.result.message_id, ctx.raw_ref)

    async def quarantine(self, raw: bytes, channel: str, account: str, error: str) -> Outcome:
        """Bad input: keep the raw bytes and a record an admin can look at; never raise."""
        ref = self.archive.put(raw)
        await self.store.put_doc("quarantine", ref, {"channel": channel, "account": account, "error": error[:2000],
                                                     "at": utcnow().isoformat(), "size": len(raw)})
        await self.store.append_event(EventKind.QUARANTINED, None, "system:ingest",
                                      {"raw_ref": ref, "channel": channel, "error": error[:500]})
        log.warning("quarantined %s input %s: %s", channel, ref[:12], error)
        return Outcome("quarantined", raw_ref=ref, error=error)
