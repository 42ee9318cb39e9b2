"""Helpers of the service-quality tests: inbound messages, users/presence, running jobs to completion."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from inbox.domain import Identity, InboundAttachment, InboundMessage, utcnow
from workers.jobs import run_one
from workers.runtime import Runtime

_ids = itertools.count(1)


def inbound(
    sender: str = "ana@example.com",
    *,
    channel: str = "email",
    kind: str | None = None,
    name: str | None = "Ana Pérez",
    text: str = "Quisiera renovar mi pasaporte",
    subject: str | None = "Consulta pasaporte",
    sent_at: datetime | None = None,
    days_ago: float | None = None,
    external_id: str | None = None,
    raw: bytes | None = None,
    attachments: list[InboundAttachment] | None = None,
    account: str = "atencion",
) -> InboundMessage:
    n = next(_ids)
    ext = external_id or f"<m{n}@test>"
    if days_ago is not None:
        sent_at = utcnow() - timedelta(days=days_ago)
    return InboundMessage(
        channel=channel,
        account=account,
        external_id=ext,
        sender=Identity(kind or ("email" if channel in ("email", "web") else channel), sender, name),
        text=text,
        raw=raw if raw is not None else f"raw {channel} {ext} {text}".encode(),
        sent_at=sent_at,
        subject=subject,
        attachments=attachments or [],
    )


async def ingest(rt: Runtime, *args, **kwargs):
    outcome = await rt.pipeline.ingest(inbound(*args, **kwargs))
    assert outcome.status == "ingested", outcome
    return await rt.store.get_ticket(outcome.ticket_id)


async def add_user(rt: Runtime, email: str, role: str = "agent", queues: list[str] | None = None,
                   capacity: int = 10, online: bool | None = True, last_seen: datetime | None = None) -> None:
    await rt.store.put_doc("users", email, {"email": email, "name": email.split("@")[0], "role": role,
                                            "queues": queues or [], "capacity": capacity, "active": True,
                                            "created_at": utcnow().isoformat()})
    if online is not None:
        await set_presence(rt, email, online, last_seen)


async def set_presence(rt: Runtime, email: str, online: bool, last_seen: datetime | None = None) -> None:
    await rt.store.put_doc("presence", email, {"online": online, "last_seen": (last_seen or utcnow()).isoformat(),
                                               "viewing": None, "typing": None})


async def drain(rt: Runtime, kinds: list[str] | None = None, limit: int = 10_000) -> dict[str, int]:
    """Run every job that is due (not those scheduled for later), as the job worker would."""
    done: dict[str, int] = {}
    for _ in range(limit):
        job = await rt.store.claim("test-worker", kinds, 60)
        if job is None:
            return done
        status = await run_one(rt, job, "test-worker")
        done[f"{job.kind}:{status}"] = done.get(f"{job.kind}:{status}", 0) + 1
    raise AssertionError("jobs keep coming")
