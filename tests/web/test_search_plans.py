"""The SQLite store's search plans (join, in-memory walk, probe scan) give the same pages as each other."""

from __future__ import annotations

import pytest

from inbox.domain import Identity, InboundMessage, TicketFilter
from inbox.store.base import TicketChanges
from inbox.store.sqlite import SQLiteStore
from workers.runtime import Runtime

PLANS = {
    "join": {"SEARCH_JOIN_MAX": 10**9},
    "walk": {"SEARCH_JOIN_MAX": 0, "SEARCH_MEMORY_MAX": 10**9, "SEARCH_CHUNK": 7},
    "walk-over-budget": {"SEARCH_JOIN_MAX": 0, "SEARCH_MEMORY_MAX": 10**9, "SEARCH_CHUNK": 3,
                         "SEARCH_SCAN_BUDGET": 3},
    "probe": {"SEARCH_JOIN_MAX": 0, "SEARCH_MEMORY_MAX": 0},
    "probe-timeout": {"SEARCH_JOIN_MAX": 0, "SEARCH_MEMORY_MAX": 0, "SEARCH_PROBE_DEADLINE_S": -1.0},
}


async def test_every_plan_returns_the_same_pages(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rt.store
    assert isinstance(store, SQLiteStore)
    for i in range(40):
        word = "pasaporte" if i % 3 == 0 else "cédula" if i % 3 == 1 else "partida"
        out = await rt.pipeline.ingest(InboundMessage(
            channel="email" if i % 2 else "web", account="t", external_id=f"s{i}",
            sender=Identity("email", f"p{i % 7}@example.com", f"Persona {i % 7}"), text=f"Consulta {i} sobre {word}",
            raw=f"r{i}".encode(), subject=f"Tema {i}"))
        if i % 5 == 0:
            t = await store.get_ticket(out.ticket_id)
            await store.update_ticket(t.id, TicketChanges(status="open"), "t")
    queries = [("pasaporte", None), ("cedula", ["new"]), ("CÉDU", None), ("consulta pas", None), ("persona", ["open"]),
               ("p3", None), ("nada", None), ("c", None)]
    expected: dict[tuple[str, str], list[list[int]]] = {}
    for plan, knobs in PLANS.items():
        with monkeypatch.context() as m:
            for k, v in knobs.items():
                m.setattr(SQLiteStore, k, v)
            for q, status in queries:
                for sort in ("last_activity", "number"):
                    pages, cursor = [], None
                    while True:
                        page = await store.list_tickets(TicketFilter(text=q, status=status), sort=sort, cursor=cursor,
                                                        limit=4)
                        pages.append([t.number for t in page.items])
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                    key = (q, sort)
                    if plan == "join":
                        expected[key] = pages
                        count = await store.count_tickets(TicketFilter(text=q, status=status))
                        assert sum(len(p) for p in pages) == count, key
                    else:
                        assert pages == expected[key], (plan, key)
    assert sum(len(p) for p in expected[("pasaporte", "number")]) == 14
