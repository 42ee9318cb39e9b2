"""The SQLite store's search: one FTS5 row per ticket, or a few parts for a long thread (``search_fts``, see
inbox/store/search_index.py), walked newest first. The walk and the probe of the filtered tickets give the same
pages; the index follows every write; a long thread is split into parts found once; a store at schema 1 is migrated
with its searchable text."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from inbox.domain import Identity, InboundMessage, Message, ThreadHints, TicketFilter, utcnow
from inbox.store import search_index
from inbox.store.base import TicketChanges
from inbox.store.sqlite import SQLiteStore, _migrations, _split_sql
from workers.runtime import Runtime

PLANS = {
    "walk": {},
    "probe": {"SEARCH_WALK_S": -1.0, "SEARCH_PROBE_CHUNK": 3},
    "probe-over-max": {"SEARCH_WALK_S": -1.0, "SEARCH_PROBE_MAX": 2},
}


async def _corpus(rt: Runtime) -> None:
    store = rt.store
    for i in range(40):
        word = "pasaporte" if i % 3 == 0 else "cédula" if i % 3 == 1 else "partida"
        out = await rt.pipeline.ingest(InboundMessage(
            channel="email" if i % 2 else "web", account="t", external_id=f"s{i}",
            sender=Identity("email", f"p{i % 7}@example.com", f"Persona {i % 7}"), text=f"Consulta {i} sobre {word}",
            raw=f"r{i}".encode(), subject=f"Tema {i}"))
        if i % 5 == 0:
            t = await store.get_ticket(out.ticket_id)
            await store.update_ticket(t.id, TicketChanges(status="open"), "t")


async def _pages(store: SQLiteStore, flt: TicketFilter, sort: str) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = await store.list_tickets(flt, sort=sort, cursor=cursor, limit=4)
        pages.append([t.number for t in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


async def test_every_plan_returns_the_same_pages(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rt.store
    assert isinstance(store, SQLiteStore)
    await _corpus(rt)
    queries = [("pasaporte", None), ("cedula", ["new"]), ("CÉDU", None), ("consulta pas", None), ("persona", ["open"]),
               ("p3", None), ("nada", None), ("c", None), ("snake_case", None)]
    expected: dict[tuple[str, str], list[list[int]]] = {}
    for plan, knobs in PLANS.items():
        with monkeypatch.context() as m:
            for k, v in knobs.items():
                m.setattr(SQLiteStore, k, v)
            for q, status in queries:
                for sort in ("last_activity", "number", "created"):
                    flt = TicketFilter(text=q, status=status)
                    pages = await _pages(store, flt, sort)
                    found = [n for p in pages for n in p]
                    assert found == sorted(found, reverse=True), (plan, q)  # newest ticket first, whatever the sort
                    key = (q, sort)
                    if plan == "walk":
                        expected[key] = pages
                        assert len(found) == await store.count_tickets(flt), key
                    else:
                        assert pages == expected[key], (plan, key)
    assert sum(len(p) for p in expected[("pasaporte", "number")]) == 14


async def test_count_with_text_stops_at_the_cap(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rt.store
    assert isinstance(store, SQLiteStore)
    await _corpus(rt)
    assert await store.count_tickets(TicketFilter(text="consulta")) == 40
    assert await store.count_tickets(TicketFilter(text="consulta", status=["open"])) == 8
    monkeypatch.setattr(SQLiteStore, "SEARCH_COUNT_CAP", 5)
    assert await store.count_tickets(TicketFilter(text="consulta")) == 5
    assert await store.count_tickets(TicketFilter(text="consulta", status=["open"])) == 5
    assert await store.count_tickets(TicketFilter(status=["new"])) == 32  # no text: exact


async def test_a_word_unicode61_splits_finds_nothing(rt: Runtime) -> None:
    """A letter of New Tai Lue is a separator to unicode61: without positions FTS5 refuses the phrase."""
    await _corpus(rt)
    flt = TicketFilter(text="consulta a\u19b0b", status=["new"])
    assert (await rt.store.list_tickets(flt)).items == [] and await rt.store.count_tickets(flt) == 0


async def test_the_walk_is_read_in_rowid_order(rt: Runtime) -> None:
    """FTS5 hands the matches over newest first (no sort step), so a page stops the walk early."""
    store = rt.store
    assert isinstance(store, SQLiteStore)
    sql = store._walk_sql(["t.status IN (?)"], 10, "t.*")
    plan = " ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                     ['"x"*', search_index.first_rowid(10), "open"]))
    assert "SCAN search_fts VIRTUAL TABLE" in plan and "TEMP B-TREE" not in plan, plan


def _search_rows(store: SQLiteStore) -> dict[int, tuple[str, str, str]]:
    """Part 0 of every ticket, by ticket number."""
    return {r[0] >> search_index.PART_BITS: (r[1], r[2], r[3]) for r in store.conn.execute(
        "SELECT rowid, subject, contact, body FROM search_fts")}


async def test_a_long_thread_is_indexed_in_parts_and_found_once(rt: Runtime, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    store = rt.store
    assert isinstance(store, SQLiteStore)
    monkeypatch.setattr(search_index, "PART_CHARS", 60)
    first = await rt.pipeline.ingest(InboundMessage(
        channel="x", account="t", external_id="x0", sender=Identity("x", "111", "Carla Pérez"),
        text="Consulta sobre la partida de nacimiento", raw=b"x0", subject="Hilo largo",
        hints=ThreadHints(conversation_id="c1")))
    other = await rt.pipeline.ingest(InboundMessage(
        channel="x", account="t", external_id="y0", sender=Identity("x", "222", "Otro"), text="Partida de otro",
        raw=b"y0", subject="Otro hilo", hints=ThreadHints(conversation_id="c2")))
    words = ["alfa", "bravo", "charlie", "delta", "eco", "foxtrot", "golf", "hotel"]
    for i, word in enumerate(words):
        await rt.pipeline.ingest(InboundMessage(
            channel="x", account="t", external_id=f"x{i + 1}", sender=Identity("x", "111", "Carla Pérez"),
            text=f"Mensaje {word} del hilo, con algo de texto para llenar la parte", raw=f"x{i + 1}".encode(),
            hints=ThreadHints(conversation_id="c1")))
    low, high = search_index.rowid_range(first.ticket_number)
    parts = store.conn.execute("SELECT rowid, subject, contact, length(body) FROM search_fts "
                               "WHERE rowid BETWEEN ? AND ? ORDER BY rowid", (low, high)).fetchall()
    assert [r[0] - low for r in parts] == list(range(len(parts))) and len(parts) >= 4
    assert all(r[1] == "Hilo largo" and "Carla" in r[2] for r in parts)  # every part carries subject and contact
    assert all(r[3] < 60 + 70 for r in parts)  # a part stops growing past PART_CHARS

    async def found(q: str, status: list[str] | None = None) -> list[int]:
        return [t.number for t in (await store.list_tickets(TicketFilter(text=q, status=status), limit=10)).items]

    for plan, knobs in PLANS.items():
        with monkeypatch.context() as m:
            for k, v in knobs.items():
                m.setattr(SQLiteStore, k, v)
            for word in ["partida", "mensaje", "llenar", "carla", "hotel", "alfa"]:
                expected = [first.ticket_number] if word not in ("partida",) else [other.ticket_number,
                                                                                   first.ticket_number]
                assert await found(word, status=["new", "open"]) == expected, (plan, word)
            assert await found("carla hotel") == [first.ticket_number]  # subject and contact are in every part
    assert await found("mensaje") == [first.ticket_number]
    assert await store.count_tickets(TicketFilter(text="mensaje")) == 1
    assert await store.count_tickets(TicketFilter(text="mensaje", status=["new", "open"])) == 1
    assert await found("alfa hotel") == []  # two words in different parts of a long thread do not meet
    # writes reach every part
    await store.update_ticket(first.ticket_id, TicketChanges(subject="Hilo renombrado"), "agente")
    assert await found("renombrado hotel") == await found("renombrado alfa") == [first.ticket_number]
    await store.delete_ticket(first.ticket_id, "retention")
    assert store.conn.execute("SELECT count(*) FROM search_fts WHERE rowid BETWEEN ? AND ?",
                              (low, high)).fetchone()[0] == 0
    assert await found("partida") == [other.ticket_number]
    store.conn.execute("INSERT INTO search_fts (search_fts, rank) VALUES ('integrity-check', 1)")


async def test_the_index_follows_every_write(rt: Runtime) -> None:
    store = rt.store
    assert isinstance(store, SQLiteStore)

    async def found(q: str) -> set[int]:
        return {t.number for t in (await store.list_tickets(TicketFilter(text=q), limit=100)).items}

    a = await rt.pipeline.ingest(InboundMessage(
        channel="email", account="t", external_id="a1", sender=Identity("email", "ana@example.com", "Ana Núñez"),
        text="Primera consulta", raw=b"a1", subject="Asunto viejo"))
    b = await rt.pipeline.ingest(InboundMessage(
        channel="email", account="t", external_id="b1", sender=Identity("email", "beto@example.com", "Beto"),
        text="Otra cosa", raw=b"b1", subject="Tema"))
    assert await found("primera") == {a.ticket_number}
    # a later inbound message and an outgoing reply join the ticket's row
    first = (await store.list_messages(a.ticket_id))[0]
    await rt.pipeline.ingest(InboundMessage(
        channel="email", account="t", external_id="a2", sender=Identity("email", "ana@example.com", "Ana Núñez"),
        text="Segunda jubilación", raw=b"a2", hints=ThreadHints(in_reply_to=first.external_id)))
    await store.add_message(Message(id=uuid.uuid4().hex, ticket_id=a.ticket_id, direction="out", channel="email",
                                    account="t", external_id=None, author=None, text="Respuesta del organismo",
                                    received_at=utcnow()), "agente", [], [])
    assert await found("jubilacion") == await found("organismo") == await found("primera segunda") == {a.ticket_number}
    # the subject
    await store.update_ticket(a.ticket_id, TicketChanges(subject="Asunto nuevo"), "agente")
    assert await found("viejo") == set() and await found("nuevo") == {a.ticket_number}
    # merges and their undo move the contact's text
    ta, tb = await store.get_ticket(a.ticket_id), await store.get_ticket(b.ticket_id)
    merge_id = await store.merge_contacts(ta.contact_id, tb.contact_id, "agente")
    assert await found("beto") == {a.ticket_number, b.ticket_number}
    await store.unmerge_contacts(merge_id, "agente")
    assert await found("beto") == {b.ticket_number}
    # anonymizing keeps only the placeholder; deleting removes the row
    await store.anonymize_ticket(a.ticket_id, "retention", "[anonimizado]")
    assert await found("jubilacion") == await found("ana") == set()
    assert await found("anonimizado") == {a.ticket_number}
    rows = _search_rows(store)
    assert rows[a.ticket_number] == ("[anonimizado]", "", "")
    await store.delete_ticket(a.ticket_id, "retention")
    assert a.ticket_number not in _search_rows(store)
    await store.erase_contact(tb.contact_id, "dpo")
    assert _search_rows(store) == {}
    store.conn.execute("INSERT INTO search_fts (search_fts, rank) VALUES ('integrity-check', 1)")


async def test_migration_moves_the_old_index(tmp_path: Path) -> None:
    """A store at schema 1 (a ticket index and a message index) gets one row per ticket with what was searchable."""
    db = tmp_path / "inbox.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, at TEXT)")
    version, name, sql = _migrations()[0]
    assert version == 1
    for statement in _split_sql(sql):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, ?, '2024-01-01')", (name,))
    now = utcnow().isoformat()
    for n, meta in ((1001, "{}"), (1002, '{"anonymized_at": "2024-01-01"}'), (1003, "{}")):
        conn.execute("INSERT INTO tickets (id, number, status, channel, contact_id, subject, created_at, "
                     "last_activity_at, meta) VALUES (?, ?, 'open', 'email', 'c1', ?, ?, ?, ?)",
                     (f"t{n}", n, f"Asunto {n}", now, now, meta))
        conn.execute("INSERT INTO ticket_fts (rowid, subject, contact) VALUES (?, ?, 'José Pérez jose@example.uy')",
                     (n, f"Asunto {n}" if n != 1002 else "[anonimizado]"))
    for seq, (n, text) in enumerate([(1001, "Mi cédula venció"), (1001, "y el pasaporte"), (1002, "[anonimizado]"),
                                     (1003, "")], start=1):
        conn.execute("INSERT INTO messages (seq, id, ticket_id, direction, channel, account, text, received_at) "
                     "VALUES (?, ?, ?, 'in', 'email', 'a', ?, ?)", (seq, f"m{seq}", f"t{n}", text, now))
        if text and n != 1002:
            conn.execute("INSERT INTO message_fts (rowid, text, ticket_number) VALUES (?, ?, ?)", (seq, text, n))
    conn.close()
    store = SQLiteStore(db)
    await store.open()
    try:
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "search_fts" in tables and "ticket_fts" not in tables and "message_fts" not in tables

        async def found(q: str) -> list[int]:
            return [t.number for t in (await store.list_tickets(TicketFilter(text=q))).items]

        assert await found("cedula pasaporte") == [1001]  # two messages of one ticket
        assert await found("jose") == [1003, 1002, 1001]
        assert await found("anonimizado") == [1002]
        assert await found("asunto 1003") == [1003]
        store.conn.execute("INSERT INTO search_fts (search_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        await store.close()
