"""The one async store interface. SQLite (embedded default) and MongoDB implement it; one contract suite tests both.

Writes that must be all-or-nothing (an ingest, an outgoing reply) are single store calls, so each backend can make
them atomic its own way: a transaction in SQLite, idempotent upserts on deterministic ids in MongoDB.
"""

from __future__ import annotations

import abc
import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inbox.domain import (
    Contact,
    Event,
    EventKind,
    Identity,
    Job,
    Message,
    Page,
    Tag,
    Ticket,
    TicketFilter,
    TicketStatus,
    utcnow,
)


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


@dataclass
class JobSpec:
    kind: str
    payload: dict[str, Any]
    not_before: datetime | None = None
    max_attempts: int | None = None
    dedupe_key: str | None = None  # same key = same job (an idempotent enqueue)


@dataclass
class NewEvent:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestPlan:
    """Everything one inbound message writes, decided by the pipeline, written by ``Store.commit_inbound``."""

    message: Message
    contact: Contact  # the resolved contact (may be new)
    contact_is_new: bool
    new_identities: list[Identity]  # identities to attach to ``contact``
    ticket: Ticket  # the threaded ticket, or a new one (number 0: the store allocates it)
    ticket_is_new: bool
    reopen: bool = False  # a resolved/pending ticket goes back to open
    events: list[NewEvent] = field(default_factory=list)
    jobs: list[JobSpec] = field(default_factory=list)
    conversation_id: str | None = None
    actor: str = "system:ingest"


@dataclass
class IngestResult:
    duplicate: bool
    ticket_id: str
    ticket_number: int
    message_id: str
    ticket_created: bool


@dataclass
class TicketChanges:
    status: str | None = None
    assignee: str | None = None
    unassign: bool = False
    queue: str | None = None
    priority: str | None = None
    tags: dict[str, Tag] | None = None  # merged into the ticket's tags
    subject: str | None = None
    meta: dict[str, Any] | None = None  # merged into the ticket's meta


SORTS = ("last_activity", "created", "number")


def plan_ticket_changes(ticket: Ticket, ch: TicketChanges) -> tuple[dict[str, Any], list[NewEvent]]:
    """The field updates and events a change set makes; both backends apply them their own way."""
    sets: dict[str, Any] = {}
    events: list[NewEvent] = []
    if ch.status is not None and ch.status != ticket.status:
        TicketStatus(ch.status)  # raises ValueError on an unknown status
        sets["status"] = ch.status
        if ch.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            if ticket.resolved_at is None:
                sets["resolved_at"] = utcnow()
        else:
            sets["resolved_at"] = None
        events.append(NewEvent(EventKind.STATUS, {"from": ticket.status, "to": ch.status}))
    if ch.unassign and ticket.assignee is not None:
        sets["assignee"] = None
        events.append(NewEvent(EventKind.ASSIGNED, {"from": ticket.assignee, "to": None}))
    elif ch.assignee is not None and ch.assignee != ticket.assignee:
        sets["assignee"] = ch.assignee
        events.append(NewEvent(EventKind.ASSIGNED, {"from": ticket.assignee, "to": ch.assignee}))
    if ch.queue is not None and ch.queue != ticket.queue:
        sets["queue"] = ch.queue
        events.append(NewEvent(EventKind.QUEUE, {"from": ticket.queue, "to": ch.queue}))
    if ch.priority is not None and ch.priority != ticket.priority:
        sets["priority"] = ch.priority
        events.append(NewEvent(EventKind.PRIORITY, {"from": ticket.priority, "to": ch.priority}))
    if ch.subject is not None and ch.subject != ticket.subject:
        sets["subject"] = ch.subject
    if ch.tags:
        tags = dict(ticket.tags)
        for name, tag in ch.tags.items():
            tags[name] = tag
            events.append(NewEvent(EventKind.TAGGED, {"tag": name, **tag.to_dict()}))
        sets["tags"] = tags
        for name in ("tramite", "agency"):
            if name in tags:
                sets[name] = tags[name].value
    if ch.meta:
        sets["meta"] = {**ticket.meta, **ch.meta}
    return sets, events


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    pad = "=" * (-len(cursor) % 4)
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + pad))
    except ValueError as exc:
        raise StoreError("invalid cursor") from exc
    if not isinstance(values, list):
        raise StoreError("invalid cursor")
    return values


class Store(abc.ABC):
    """Async store. Every method is safe to call concurrently from many tasks (and processes)."""

    # -- lifecycle -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema / indexes up to date."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations; return what was applied."""

    # -- contacts --------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_contact(self, contact_id: str) -> Contact | None: ...

    @abc.abstractmethod
    async def find_contact_by_identity(self, kind: str, value: str) -> Contact | None:
        """The contact owning the identity (normalized value)."""

    @abc.abstractmethod
    async def create_contact(self, contact: Contact, actor: str) -> Contact:
        """Create a contact with its identities; raises StoreError if an identity already belongs to another."""

    @abc.abstractmethod
    async def add_identity(self, contact_id: str, identity: Identity, actor: str) -> None:
        """Attach an identity; raises StoreError if it belongs to another contact."""

    @abc.abstractmethod
    async def merge_contacts(self, keep_id: str, other_id: str, actor: str) -> str:
        """Move the other contact's identities and tickets to ``keep_id``; returns a merge id for undo."""

    @abc.abstractmethod
    async def unmerge_contacts(self, merge_id: str, actor: str) -> None:
        """Undo a merge: identities and tickets return to the contact they came from."""

    @abc.abstractmethod
    async def search_contacts(self, query: str, limit: int = 20) -> list[Contact]: ...

    # -- tickets ---------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_ticket(self, ticket_id: str) -> Ticket | None: ...

    @abc.abstractmethod
    async def get_ticket_by_number(self, number: int) -> Ticket | None: ...

    @abc.abstractmethod
    async def list_tickets(
        self, flt: TicketFilter | None = None, sort: str = "last_activity", cursor: str | None = None, limit: int = 50
    ) -> Page:
        """Keyset pagination, newest first. ``flt.text`` is a full-text query (case and accent insensitive)."""

    @abc.abstractmethod
    async def count_tickets(self, flt: TicketFilter | None = None) -> int: ...

    @abc.abstractmethod
    async def update_ticket(self, ticket_id: str, changes: TicketChanges, actor: str) -> Ticket:
        """Apply changes and append one event per change (status, assigned, tagged, ...)."""

    @abc.abstractmethod
    async def find_ticket_by_external_ids(self, channel: str, external_ids: list[str]) -> str | None:
        """The ticket of the newest message on ``channel`` whose external id is one of ``external_ids``."""

    @abc.abstractmethod
    async def find_ticket_by_conversation(self, channel: str, account: str, conversation_id: str) -> str | None: ...

    # -- messages --------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def message_exists(self, channel: str, account: str, external_id: str) -> bool: ...

    @abc.abstractmethod
    async def commit_inbound(self, plan: IngestPlan) -> IngestResult:
        """Write an ingest atomically (or idempotently). A duplicate (channel, account, external_id) writes nothing
        and returns ``duplicate=True``."""

    @abc.abstractmethod
    async def add_message(
        self, message: Message, actor: str, events: list[NewEvent], jobs: list[JobSpec], first_response: bool = True
    ) -> Message:
        """Store an outgoing message or note with its events and jobs (e.g. the delivery job) in one write."""

    @abc.abstractmethod
    async def get_message(self, message_id: str) -> Message | None: ...

    @abc.abstractmethod
    async def list_messages(self, ticket_id: str) -> list[Message]: ...

    @abc.abstractmethod
    async def set_delivery(
        self, message_id: str, status: str, actor: str, external_id: str | None = None, error: str | None = None
    ) -> None:
        """Record a delivery outcome and its event (reply.sent / reply.failed)."""

    # -- events ----------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_event(self, kind: str, ticket_id: str | None, actor: str, data: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    async def list_events(
        self, after_seq: int = 0, ticket_id: str | None = None, limit: int = 100, kinds: list[str] | None = None
    ) -> list[Event]: ...

    # -- job queue -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, spec: JobSpec) -> str: ...

    @abc.abstractmethod
    async def claim(self, worker: str, kinds: list[str] | None = None, lease_s: float = 60) -> Job | None:
        """Atomically take the oldest ready job (or one whose lease expired) and lease it to ``worker``."""

    @abc.abstractmethod
    async def heartbeat(self, job_id: str, worker: str, lease_s: float = 60) -> bool:
        """Extend the lease; False if the job is no longer leased to this worker."""

    @abc.abstractmethod
    async def complete(self, job_id: str, worker: str) -> bool: ...

    @abc.abstractmethod
    async def fail(self, job_id: str, worker: str, error: str, retry_in_s: float | None) -> str:
        """Give the job back: retry after ``retry_in_s`` or dead-letter (None or no attempts left); returns status."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    async def list_jobs(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]: ...

    @abc.abstractmethod
    async def job_counts(self) -> dict[str, dict[str, int]]:
        """{kind: {status: count}} for metrics and the queue page."""

    # -- documents (small named collections: cursors, users, channel health, labels, settings of features) --------
    @abc.abstractmethod
    async def get_doc(self, collection: str, key: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def put_doc(self, collection: str, key: str, doc: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    async def delete_doc(self, collection: str, key: str) -> bool: ...

    @abc.abstractmethod
    async def list_docs(self, collection: str, limit: int = 10_000) -> list[tuple[str, dict[str, Any]]]: ...

    # -- data protection -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def erase_contact(self, contact_id: str, actor: str) -> list[str]:
        """Delete a person's tickets, messages and identities (search index included); return the raw refs the
        caller must delete from the archive when no other message uses them."""

    # Added for retention and erasure (workers/quality). Not abstract, so a backend that lacks them still loads;
    # calling one there raises NotImplementedError.
    async def anonymize_ticket(self, ticket_id: str, actor: str, placeholder: str) -> list[str]:
        """Close the ticket and replace its personal data with ``placeholder``: the ticket's subject; every
        message's text, subject and author; HTML and delivery errors removed; attachments keep only type and size
        (name replaced, ``sha256`` None); message meta keeps only ``KEPT_MESSAGE_META``; tag explanations (``why``)
        dropped from the ticket and its tag events. Removes it from the search index, sets ``meta.anonymized_at``
        and records ``ticket.anonymized``. Returns the raw refs no other message uses (the caller deletes them from
        the archive). External ids stay, so a re-fetched message is still recognised as a duplicate."""
        raise NotImplementedError

    async def anonymize_contact(self, contact_id: str, actor: str, placeholder: str) -> None:
        """Replace the contact's name (and those of contacts merged into it) with ``placeholder`` and delete its
        identities; refresh the search index; record ``contact.anonymized``."""
        raise NotImplementedError

    async def delete_ticket(self, ticket_id: str, actor: str) -> list[str]:
        """Delete a ticket and its messages (search index included; its events keep kind/actor/time, data emptied);
        record ``ticket.deleted``. Returns the raw refs no other message uses."""
        raise NotImplementedError

    async def attachment_refs_in_use(self, refs: list[str]) -> set[str]:
        """Which of these attachment ``sha256`` refs a stored message still lists."""
        raise NotImplementedError


KEPT_MESSAGE_META = frozenset({"x_kind", "kind", "thread_rule"})
