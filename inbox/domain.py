"""Domain shapes of the ticket stream. Pure data: no I/O, no store, no channel specifics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting on the citizen: SLA timers pause
    RESOLVED = "resolved"
    CLOSED = "closed"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    NOTE = "note"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class IdentityKind(StrEnum):
    EMAIL = "email"
    X = "x"
    FACEBOOK = "facebook"  # app-scoped user id
    MESSENGER = "messenger"  # page-scoped id (PSID)
    PHONE = "phone"
    CI = "ci"  # cédula de identidad


def normalize_identity_value(kind: str, value: str) -> str:
    """Canonical form so one address is one identity (case, spaces)."""
    value = value.strip()
    if kind == IdentityKind.EMAIL:
        return value.lower()
    if kind in (IdentityKind.PHONE, IdentityKind.CI):
        return "".join(ch for ch in value if ch.isdigit() or ch == "+")
    return value


@dataclass(frozen=True)
class Identity:
    kind: str
    value: str
    display_name: str | None = None
    handle: str | None = None  # e.g. @user on X

    def normalized(self) -> Identity:
        return Identity(self.kind, normalize_identity_value(self.kind, self.value), self.display_name, self.handle)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, normalize_identity_value(self.kind, self.value))


@dataclass
class Contact:
    id: str
    name: str | None
    identities: list[Identity] = field(default_factory=list)
    merged_into: str | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Tag:
    """A trámite or agency tag; `value` is the catalogue key or agency name."""

    value: str | None
    source: str  # "model" | "agent"
    confidence: float | None = None
    model_version: str | None = None
    label: str | None = None  # human-readable name
    why: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "source": self.source,
            "confidence": self.confidence,
            "model_version": self.model_version,
            "label": self.label,
            "why": list(self.why),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tag:
        return cls(
            value=d.get("value"),
            source=d.get("source", "model"),
            confidence=d.get("confidence"),
            model_version=d.get("model_version"),
            label=d.get("label"),
            why=list(d.get("why") or []),
        )


@dataclass
class Ticket:
    id: str
    number: int
    status: str
    channel: str
    contact_id: str
    subject: str | None
    tags: dict[str, Tag] = field(default_factory=dict)  # "tramite" / "agency"
    assignee: str | None = None
    queue: str | None = None
    priority: str = "normal"  # low | normal | high | urgent
    created_at: datetime = field(default_factory=utcnow)
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    last_activity_at: datetime = field(default_factory=utcnow)
    message_count: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str | None  # None when skipped (over the size limit); the raw stays archived
    content_id: str | None = None  # for inline cid: images
    skipped: str | None = None  # reason, e.g. "too_large"

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "content_id": self.content_id,
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attachment:
        return cls(d["filename"], d["content_type"], d["size"], d.get("sha256"), d.get("content_id"), d.get("skipped"))


@dataclass
class Message:
    id: str
    ticket_id: str
    direction: str
    channel: str
    account: str
    external_id: str | None
    author: Identity | None
    text: str
    html: str | None = None  # sanitized, safe to display
    subject: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    raw_ref: str | None = None  # sha256 of the archived raw input
    sent_at: datetime | None = None
    received_at: datetime = field(default_factory=utcnow)
    delivery_status: str | None = None  # outgoing only
    delivery_error: str | None = None
    author_user: str | None = None  # agent who wrote an outgoing message / note
    flags: list[str] = field(default_factory=list)  # e.g. auto_reply, bounce, loop
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    seq: int
    kind: str
    ticket_id: str | None
    actor: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


class EventKind(StrEnum):
    TICKET_CREATED = "ticket.created"
    MESSAGE_ADDED = "message.added"
    TAGGED = "ticket.tagged"
    ASSIGNED = "ticket.assigned"
    STATUS = "ticket.status"
    PRIORITY = "ticket.priority"
    QUEUE = "ticket.queue"
    CONTACT_CREATED = "contact.created"
    CONTACT_MERGED = "contact.merged"
    CONTACT_UNMERGED = "contact.unmerged"
    REPLY_QUEUED = "reply.queued"
    REPLY_SENT = "reply.sent"
    REPLY_FAILED = "reply.failed"
    CHANNEL_HEALTH = "channel.health"
    QUARANTINED = "ingest.quarantined"


@dataclass
class ThreadHints:
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    conversation_id: str | None = None  # X conversation, DM conversation, FB post/thread
    ticket_number: int | None = None  # e.g. "[#1042]" in a subject


@dataclass
class InboundAttachment:
    filename: str
    content_type: str
    data: bytes | None  # None when skipped
    size: int
    content_id: str | None = None
    skipped: str | None = None


@dataclass
class InboundMessage:
    """The one normalized shape every adapter produces."""

    channel: str
    account: str
    external_id: str
    sender: Identity
    text: str
    raw: bytes
    sent_at: datetime | None = None
    subject: str | None = None
    html: str | None = None  # already sanitized by the adapter's parser
    attachments: list[InboundAttachment] = field(default_factory=list)
    hints: ThreadHints = field(default_factory=ThreadHints)
    meta: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # set by parsers (auto_reply, bounce, own_message...)
    extra_identities: list[Identity] = field(default_factory=list)  # e.g. a cédula given in a web form

    @property
    def dedupe_key(self) -> tuple[str, str, str]:
        return (self.channel, self.account, self.external_id)


def stable_id(prefix: str, *parts: str) -> str:
    """Deterministic ids make every write of a retried ingest an idempotent upsert."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


@dataclass
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    not_before: datetime
    status: str  # ready | running | done | dead
    lease_until: datetime | None = None
    worker: str | None = None
    last_error: str | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass
class TicketFilter:
    status: list[str] | None = None
    channel: str | None = None
    queue: str | None = None
    assignee: str | None = None
    unassigned: bool = False
    tramite: str | None = None
    agency: str | None = None
    contact_id: str | None = None
    text: str | None = None  # full-text query
