"""MongoDB-only behaviour: writes without transactions survive a crash at every step; event sequence holes; several
clients at once. Run against nx-27017 and, with INBOX_TEST_MONGODB_URL, a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inbox.archive import RawArchive
from inbox.domain import DeliveryStatus, Direction, EventKind, Message
from inbox.ingest import Pipeline
from inbox.store.base import JobSpec
from inbox.store.mongodb import MongoStore, fold, search_terms, terms_filter

from .factory import inbound

STEPS = ["contact", "ticket", "message", "ticket_updates", "events", "jobs"]


class Crash(Exception):
    pass


def crash_at(store: MongoStore, step: str) -> None:
    store.pending_grace_s = 0.1  # a half-written message is finished by others after this (default 2 s)

    def fault(name: str) -> None:
        if name == step:
            store.fault = None  # once
            raise Crash(step)

    store.fault = fault


async def _assert_consistent(store: MongoStore, ticket_id: str, messages: int) -> None:
    t = await store.get_ticket(ticket_id)
    assert t is not None
    msgs = await store.list_messages(ticket_id)
    assert len(msgs) == messages == t.message_count
    assert len({m.id for m in msgs}) == messages
    kinds = [e.kind for e in await store.list_events(ticket_id=ticket_id, limit=1000)]
    assert kinds.count(EventKind.TICKET_CREATED) == 1
    assert kinds.count(EventKind.MESSAGE_ADDED) == messages
    assert await store.db.messages.count_documents({"pending": True}) == 0
    assert [j.payload for j in await store.list_jobs(kind="triage")] == [{"ticket_id": ticket_id}]


@pytest.mark.parametrize("step", STEPS)
async def test_crash_then_retry_completes_once(mongo_store: MongoStore, tmp_path: Path, step: str) -> None:
    pipeline = Pipeline(mongo_store, RawArchive(tmp_path / "raw"))
    msg = inbound(external_id="<crash@x>")
    crash_at(mongo_store, step)
    with pytest.raises(Crash):
        await pipeline.ingest(msg)
    again = await pipeline.ingest(inbound(external_id="<crash@x>"))
    # before the message is stored the retry does the work; after, the dedupe step finds it and finishes it
    assert again.status == ("ingested" if STEPS.index(step) < STEPS.index("message") else "duplicate")
    ticket_id = await mongo_store.find_ticket_by_external_ids("email", ["<crash@x>"])
    assert ticket_id is not None
    await _assert_consistent(mongo_store, ticket_id, 1)
    # and once more: nothing changes
    assert (await pipeline.ingest(inbound(external_id="<crash@x>"))).status == "duplicate"
    await _assert_consistent(mongo_store, ticket_id, 1)
    assert len(await mongo_store.list_events(kinds=[EventKind.CONTACT_CREATED])) == 1


@pytest.mark.parametrize("step", ["message", "ticket_updates", "events", "jobs"])
async def test_crash_then_restart_recovers_without_refeeding(mongo_store: MongoStore, tmp_path: Path,
                                                             step: str) -> None:
    pipeline = Pipeline(mongo_store, RawArchive(tmp_path / "raw"))
    first = await pipeline.ingest(inbound(external_id="<root@x>"))
    crash_at(mongo_store, step)
    with pytest.raises(Crash):
        await pipeline.ingest(inbound(in_reply_to="<root@x>"))
    restarted = MongoStore(mongo_store.url, mongo_store.database_name)
    restarted.pending_grace_s = 0.1
    await restarted.open()  # runs recover()
    try:
        t = await restarted.get_ticket(first.ticket_id)
        assert t.message_count == 2
        await _assert_consistent(restarted, first.ticket_id, 2)
        assert await restarted.recover() == 0  # nothing pending any more
    finally:
        await restarted.close()


async def test_crashed_reply_is_finished_when_the_outbox_looks_it_up(mongo_store: MongoStore, tmp_path: Path) -> None:
    pipeline = Pipeline(mongo_store, RawArchive(tmp_path / "raw"))
    out = await pipeline.ingest(inbound())
    reply = Message(id="m_reply", ticket_id=out.ticket_id, direction=Direction.OUT, channel="email",
                    account="consultas@gub.uy", external_id=None, author=None, text="respuesta",
                    delivery_status=DeliveryStatus.QUEUED, author_user="ana@gub.uy")
    job = JobSpec("deliver", {"message_id": reply.id}, dedupe_key=f"deliver:{reply.id}")
    crash_at(mongo_store, "ticket_updates")
    with pytest.raises(Crash):
        await mongo_store.add_message(reply, "ana@gub.uy", [], [job])
    assert await mongo_store.get_job(job.dedupe_key) is None  # the job is only written after the message
    # queue_reply's retry looks the message up first (workers/outbox.py): that finishes the write
    assert (await mongo_store.get_message(reply.id)).text == "respuesta"
    assert (await mongo_store.get_job(job.dedupe_key)).status == "ready"
    t = await mongo_store.get_ticket(out.ticket_id)
    assert t.message_count == 2 and t.first_response_at is not None
    assert [e.kind for e in await mongo_store.list_events(ticket_id=t.id)][-1] == EventKind.REPLY_QUEUED


async def test_young_event_hole_holds_readers_back(mongo_store: MongoStore) -> None:
    s1 = await mongo_store.append_event("a", "t1", "x", {})
    await mongo_store._next("event_seq")  # a writer between allocating its number and inserting the event
    s3 = await mongo_store.append_event("b", "t1", "x", {})
    assert [e.seq for e in await mongo_store.list_events(after_seq=s1 - 1)] == [s1]
    assert [e.seq for e in await mongo_store.list_events(after_seq=s1 - 1, ticket_id="t1")] == [s1]
    assert [e.seq for e in await mongo_store.list_events(after_seq=s1)] == []
    mongo_store.events_gap_grace_s = 0  # the writer is gone for good: the hole is skipped
    assert [e.seq for e in await mongo_store.list_events(after_seq=s1 - 1)] == [s1, s3]


async def test_two_clients_ingest_concurrently(mongo_store: MongoStore, tmp_path: Path) -> None:
    other = MongoStore(mongo_store.url, mongo_store.database_name)
    await other.open()
    try:
        p1 = Pipeline(mongo_store, RawArchive(tmp_path / "raw"))
        p2 = Pipeline(other, RawArchive(tmp_path / "raw"))
        msgs = [inbound(sender=f"c{i}@example.uy") for i in range(10)]
        outs = await asyncio.gather(*[p.ingest(m) for m in msgs for p in (p1, p2)])  # each input fed to both
        assert sorted(o.status for o in outs) == ["duplicate"] * 10 + ["ingested"] * 10
        numbers = [o.ticket_number for o in outs if o.status == "ingested"]
        assert len(set(numbers)) == 10
        assert await mongo_store.count_tickets() == 10
        assert await mongo_store.db.messages.count_documents({}) == 10
        for o in outs:
            if o.status == "ingested":
                assert (await other.get_ticket(o.ticket_id)).message_count == 1
    finally:
        await other.close()


async def test_migrate_is_idempotent_and_numbers_continue(mongo_store: MongoStore, tmp_path: Path) -> None:
    assert await mongo_store.migrate() == []
    pipeline = Pipeline(mongo_store, RawArchive(tmp_path / "raw"))
    first = await pipeline.ingest(inbound())
    assert first.ticket_number == 1001  # like the SQLite store
    reopened = MongoStore(mongo_store.url, mongo_store.database_name)
    await reopened.open()
    try:
        second = await Pipeline(reopened, RawArchive(tmp_path / "raw")).ingest(inbound())
        assert second.ticket_number == 1002
    finally:
        await reopened.close()


def test_search_terms_fold_like_fts5() -> None:
    assert fold("Cédula ÑANDÚ Über") == "cedula nandu uber"
    assert search_terms("Renovación de CÉDULA", None, "jose.perez@correo.uy", "snake_case") == [
        "renovacion", "de", "cedula", "jose", "perez", "correo", "uy", "snake", "case"]
    assert terms_filter("¿?") is None
    assert terms_filter("ced") == {"search_terms": {"$elemMatch": {"$gte": "ced", "$lt": "cee"}}}


@pytest.mark.real_mongodb
async def test_indexes_on_a_real_server(mongo_store: MongoStore) -> None:
    info = await mongo_store.db.messages.index_information()
    ext = info["messages_external"]
    assert ext["unique"] and ext["partialFilterExpression"] == {"external_id": {"$type": "string"}}
    assert (await mongo_store.db.tickets.index_information())["tickets_number"]["unique"]
    assert (await mongo_store.db.identities.index_information())["identities_kind_value"]["unique"]
    assert (await mongo_store.db.events.index_information())["events_seq"]["unique"]
    # the search index is used: an explain of a term query names it
    plan = await mongo_store.db.tickets.find(terms_filter("cedula")).explain()
    assert "tickets_search" in str(plan["queryPlanner"]["winningPlan"])


async def test_concurrent_duplicates_wait_for_the_writer(mongo_store: MongoStore, tmp_path: Path) -> None:
    pipeline = Pipeline(mongo_store, RawArchive(tmp_path / "raw"))
    outs = await asyncio.gather(*[pipeline.ingest(inbound(external_id="<same@x>")) for _ in range(6)])
    assert sorted(o.status for o in outs) == ["duplicate"] * 5 + ["ingested"]
    # nobody finished the write in the writer's place, so no event number was wasted
    seqs = [e.seq for e in await mongo_store.list_events(limit=1000)]
    assert seqs == list(range(1, len(seqs) + 1))
    ticket_id = await mongo_store.find_ticket_by_external_ids("email", ["<same@x>"])
    await _assert_consistent(mongo_store, ticket_id, 1)
