"""Inbound messages for the contract suite."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from inbox.domain import Identity, InboundMessage, ThreadHints

_counter = itertools.count(1)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def inbound(
    *,
    sender: str = "ana@example.uy",
    name: str | None = "Ana Pérez",
    kind: str = "email",
    subject: str | None = "Consulta",
    text: str = "Hola, tengo una consulta.",
    channel: str = "email",
    account: str = "consultas@gub.uy",
    external_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    conversation_id: str | None = None,
    ticket_number: int | None = None,
    extra_identities: list[Identity] | None = None,
    flags: list[str] | None = None,
    raw: bytes | None = None,
) -> InboundMessage:
    n = next(_counter)
    external_id = external_id or f"<m{n}@example.uy>"
    return InboundMessage(
        channel=channel,
        account=account,
        external_id=external_id,
        sender=Identity(kind, sender, name),
        text=text,
        raw=raw if raw is not None else f"{channel}|{account}|{external_id}|{text}".encode(),
        sent_at=T0 + timedelta(minutes=n),
        subject=subject,
        hints=ThreadHints(in_reply_to=in_reply_to, references=list(references or []),
                          conversation_id=conversation_id, ticket_number=ticket_number),
        extra_identities=list(extra_identities or []),
        flags=list(flags or []),
    )
