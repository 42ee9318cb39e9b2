"""The ingest pipeline's steps, each on a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from inbox.domain import Identity, Message, TicketFilter
from inbox.ingest import IngestContext, archive_raw, dedupe, resolve_contact, thread
from inbox.store.sqlite import SQLiteStore
from tests.core.helpers import inbound
from workers.runtime import Runtime


async def test_archive_raw_stores_bytes_before_anything_else(rt: Runtime) -> None:
    m = inbound(1)
    ctx = IngestContext(m)
    await archive_raw(rt.pipeline, ctx)
    assert ctx.raw_ref is not None
    assert rt.archive.get(ctx.raw_ref) == m.raw
    assert await rt.store.count_tickets() == 0


async def test_dedupe_step_sees_a_stored_message(rt: Runtime) -> None:
    m = inbound(1)
    ctx = IngestContext(m)
    await dedupe(rt.pipeline, ctx)
    assert ctx.duplicate is False
    await rt.pipeline.ingest(m)
    ctx = IngestContext(inbound(1))
    await dedupe(rt.pipeline, ctx)
    assert ctx.duplicate is True


async def test_same_input_twice_is_one_message(rt: Runtime) -> None:
    first = await rt.pipeline.ingest(inbound(1))
    second = await rt.pipeline.ingest(inbound(1))
    assert (first.status, second.status) == ("ingested", "duplicate")
    ticket = await rt.store.get_ticket_by_number(first.ticket_number or 0)
    assert ticket is not None and ticket.message_count == 1
    assert len(await rt.store.list_messages(ticket.id)) == 1


async def test_resolve_contact_reuses_the_identity_owner(rt: Runtime) -> None:
    await rt.pipeline.ingest(inbound(1, sender="Ana@Example.UY"))
    ctx = IngestContext(inbound(2, sender="ana@example.uy"))
    await resolve_contact(rt.pipeline, ctx)
    assert ctx.contact is not None and not ctx.contact_is_new
    assert [i.value for i in ctx.contact.identities] == ["ana@example.uy"]


async def test_extra_identity_joins_the_contact(rt: Runtime) -> None:
    await rt.pipeline.ingest(inbound(1, sender="ana@example.uy"))
    m = inbound(2, sender="ana@example.uy")
    m.extra_identities.append(Identity("ci", "1.234.567-8"))
    await rt.pipeline.ingest(m)
    contact = await rt.store.find_contact_by_identity("ci", "12345678")
    assert contact is not None
    assert {i.kind for i in contact.identities} == {"email", "ci"}


async def test_thread_by_reference_then_new_ticket(rt: Runtime) -> None:
    a = await rt.pipeline.ingest(inbound(1))
    ctx = IngestContext(inbound(2, sender="otra@example.uy", reply_to="msg1@test"))
    await resolve_contact(rt.pipeline, ctx)
    await thread(rt.pipeline, ctx)
    assert ctx.thread_rule == "references" and ctx.ticket is not None and ctx.ticket.number == a.ticket_number
    ctx = IngestContext(inbound(3))
    await resolve_contact(rt.pipeline, ctx)
    await thread(rt.pipeline, ctx)
    assert ctx.thread_rule == "new" and ctx.ticket_is_new


async def test_ticket_number_hint_needs_the_tickets_contact(rt: Runtime) -> None:
    a = await rt.pipeline.ingest(inbound(1, sender="ana@example.uy"))
    own = await rt.pipeline.ingest(inbound(2, sender="ana@example.uy", ticket_number=a.ticket_number))
    stranger = await rt.pipeline.ingest(inbound(3, sender="intruso@example.uy", ticket_number=a.ticket_number))
    assert own.ticket_number == a.ticket_number
    assert stranger.ticket_number != a.ticket_number


async def test_reply_reopens_a_resolved_ticket(rt: Runtime) -> None:
    from inbox.store.base import TicketChanges

    a = await rt.pipeline.ingest(inbound(1))
    await rt.store.update_ticket(a.ticket_id or "", TicketChanges(status="resolved"), "agent@x")
    await rt.pipeline.ingest(inbound(2, sender="persona1@example.uy", reply_to="msg1@test"))
    ticket = await rt.store.get_ticket(a.ticket_id or "")
    assert ticket is not None and ticket.status == "open" and ticket.message_count == 2


async def test_new_ticket_enqueues_one_triage_job(rt: Runtime) -> None:
    a = await rt.pipeline.ingest(inbound(1))
    await rt.pipeline.ingest(inbound(2, sender="persona1@example.uy", reply_to="msg1@test"))
    jobs = await rt.store.list_jobs(kind="triage")
    assert [j.payload["ticket_id"] for j in jobs] == [a.ticket_id]


async def test_automated_mail_is_not_triaged(rt: Runtime) -> None:
    m = inbound(1)
    m.flags.append("auto_reply")
    await rt.pipeline.ingest(m)
    assert await rt.store.list_jobs(kind="triage") == []


async def test_concurrent_ingests_get_distinct_numbers(rt: Runtime) -> None:
    outcomes = await asyncio.gather(*(rt.pipeline.ingest(inbound(i)) for i in range(20)))
    numbers = [o.ticket_number for o in outcomes]
    assert len(set(numbers)) == 20
    assert await rt.store.count_tickets() == 20


async def test_concurrent_first_messages_of_one_sender_make_one_contact(rt: Runtime) -> None:
    await asyncio.gather(*(rt.pipeline.ingest(inbound(i, sender="mismo@example.uy")) for i in range(10)))
    contact = await rt.store.find_contact_by_identity("email", "mismo@example.uy")
    assert contact is not None
    assert await rt.store.count_tickets(TicketFilter(contact_id=contact.id)) == 10


async def test_bad_input_is_quarantined_and_kept(rt: Runtime) -> None:
    raw = b"\xff\xfe garbage that is no email"
    outcome = await rt.pipeline.quarantine(raw, "email", "test", "MalformedEmail: no headers")
    assert outcome.status == "quarantined" and outcome.raw_ref
    assert rt.archive.get(outcome.raw_ref) == raw
    doc = await rt.store.get_doc("quarantine", outcome.raw_ref)
    assert doc is not None and "no headers" in doc["error"]
    events = await rt.store.list_events(kinds=["ingest.quarantined"])
    assert len(events) == 1


async def test_group_commit_indexes_only_the_plans_it_keeps(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans written together share one transaction; a failing one is rolled back to its savepoint, and the search
    index (written after the last savepoint) gets exactly the messages that were kept."""
    store = rt.store
    assert isinstance(store, SQLiteStore)
    insert_message = SQLiteStore._insert_message

    def failing_for_six(c: sqlite3.Connection, m: Message, conversation_id: str | None) -> None:
        if "clave6zeta" in m.text:
            raise sqlite3.IntegrityError("refused for the test")
        insert_message(c, m, conversation_id)

    monkeypatch.setattr(SQLiteStore, "_insert_message", staticmethod(failing_for_six))
    texts = [f"Consulta por el expediente clave{i}zeta" for i in range(12)]
    outcomes = await asyncio.gather(*(rt.pipeline.ingest(inbound(i, text=t)) for i, t in enumerate(texts)),
                                    return_exceptions=True)
    assert sum(isinstance(o, BaseException) or o.status == "quarantined" for o in outcomes) == 1
    for i in range(12):
        assert await store.count_tickets(TicketFilter(text=f"clave{i}zeta")) == (0 if i == 6 else 1)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM search_fts").fetchone()[0] == 11
        assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 11


async def test_the_wal_is_checkpointed_beside_the_writer(tmp_path: Path) -> None:
    """The database file grows while the writer's own checkpoint (a 100 MiB backstop) has not run: the checkpointer
    thread copied the WAL back. Closing the store stops that thread."""
    store = SQLiteStore(tmp_path / "inbox.sqlite3")
    await store.open()
    try:
        db = tmp_path / "inbox.sqlite3"
        size_before = db.stat().st_size
        for i in range(200):
            await store.put_doc("bench", f"k{i}", {"blob": "x" * 10_000})
        assert (tmp_path / "inbox.sqlite3-wal").stat().st_size > 2_000_000
        for _ in range(100):
            if db.stat().st_size > size_before + 1_500_000:
                break
            await asyncio.sleep(0.05)
        assert db.stat().st_size > size_before + 1_500_000
    finally:
        await store.close()
    assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
