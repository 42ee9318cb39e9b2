"""Tickets: keyset pagination over every sort, list filters combined, updates and their events."""

from __future__ import annotations

import asyncio

import pytest

from inbox.domain import EventKind, Tag, Ticket, TicketFilter, TicketStatus
from inbox.ingest import Pipeline
from inbox.store.base import NotFound, Store, StoreError, TicketChanges, decode_cursor

from .factory import inbound

SORT_KEYS = {
    "last_activity": lambda t: (t.last_activity_at, t.number),
    "created": lambda t: (t.created_at, t.number),
    "number": lambda t: (t.number,),
}


async def _walk(store: Store, flt: TicketFilter | None, sort: str, limit: int) -> list[Ticket]:
    out: list[Ticket] = []
    cursor = None
    for _ in range(100):
        page = await store.list_tickets(flt, sort=sort, cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        assert len(page.items) == limit
        assert len(decode_cursor(page.next_cursor)) == 2
        cursor = page.next_cursor
    raise AssertionError("pagination does not end")


async def _make_tickets(pipeline: Pipeline, n: int) -> list[str]:
    # in small concurrent batches: several tickets share a creation / activity time, which the keyset must handle
    ids: list[str] = []
    for start in range(0, n, 5):
        outs = await asyncio.gather(*[pipeline.ingest(inbound(sender=f"p{i % 7}@example.uy", subject=f"Asunto {i}"))
                                      for i in range(start, min(n, start + 5))])
        ids.extend(o.ticket_id for o in outs)
    return ids


@pytest.mark.parametrize("sort", ["last_activity", "created", "number"])
async def test_keyset_pagination_walks_every_ticket_once_in_order(store: Store, pipeline: Pipeline,
                                                                  sort: str) -> None:
    ids = await _make_tickets(pipeline, 23)
    for limit in (1, 7, 23, 50):
        walked = await _walk(store, None, sort, limit)
        assert sorted(t.id for t in walked) == sorted(ids)  # all of them, none twice
        keys = [SORT_KEYS[sort](t) for t in walked]
        assert keys == sorted(keys, reverse=True)  # newest first


async def test_pagination_with_activity_ties(store: Store, pipeline: Pipeline) -> None:
    ids = await _make_tickets(pipeline, 12)
    # the same activity time for several tickets: the ticket number breaks the tie
    tickets = [await store.get_ticket(i) for i in ids]
    walked = await _walk(store, None, "last_activity", 4)
    assert [t.id for t in walked] == [t.id for t in sorted(tickets, key=SORT_KEYS["last_activity"], reverse=True)]


async def test_bad_sort_and_cursor(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.list_tickets(sort="subject")
    with pytest.raises(StoreError):
        await store.list_tickets(cursor="%%%not-a-cursor")


async def test_filters_combined(store: Store, pipeline: Pipeline) -> None:
    ids = await _make_tickets(pipeline, 10)
    web = await pipeline.ingest(inbound(channel="web", account="form", sender="w@example.uy", subject="Formulario"))
    pasaporte = Tag("pasaporte", "model", 0.9, "m1", "Pasaporte")
    await store.update_ticket(ids[0], TicketChanges(status=TicketStatus.OPEN, assignee="ana@gub.uy", queue="MI",
                                                    tags={"tramite": pasaporte, "agency": Tag("DNIC", "agent")}), "a")
    await store.update_ticket(ids[1], TicketChanges(status=TicketStatus.OPEN, queue="MI",
                                                    tags={"tramite": pasaporte}), "a")
    await store.update_ticket(ids[2], TicketChanges(status=TicketStatus.PENDING, assignee="beto@gub.uy",
                                                    queue="MEC"), "a")
    await store.update_ticket(web.ticket_id, TicketChanges(status=TicketStatus.OPEN, queue="MI"), "a")
    contact_of_0 = (await store.get_ticket(ids[0])).contact_id

    async def check(flt: TicketFilter, expected: set[str]) -> None:
        walked = await _walk(store, flt, "last_activity", 3)
        assert {t.id for t in walked} == expected, flt
        assert len(walked) == len(expected)
        assert await store.count_tickets(flt) == len(expected)

    await check(TicketFilter(status=["open"]), {ids[0], ids[1], web.ticket_id})
    await check(TicketFilter(status=["open", "pending"], queue="MI"), {ids[0], ids[1], web.ticket_id})
    await check(TicketFilter(status=["open"], channel="email", queue="MI"), {ids[0], ids[1]})
    await check(TicketFilter(channel="web"), {web.ticket_id})
    await check(TicketFilter(assignee="ana@gub.uy"), {ids[0]})
    await check(TicketFilter(queue="MI", unassigned=True), {ids[1], web.ticket_id})
    await check(TicketFilter(unassigned=True), set(ids[1:]) - {ids[2]} | {web.ticket_id})
    await check(TicketFilter(tramite="pasaporte"), {ids[0], ids[1]})
    await check(TicketFilter(tramite="pasaporte", agency="DNIC"), {ids[0]})
    await check(TicketFilter(status=["new"], queue="MI"), set())
    await check(TicketFilter(contact_id=contact_of_0), {t for t in ids if (await store.get_ticket(t)).contact_id
                                                        == contact_of_0})
    await check(TicketFilter(status=["open"], text="asunto"), {ids[0], ids[1]})
    assert await store.count_tickets() == 11
    assert await store.count_tickets(TicketFilter()) == 11


async def test_update_ticket_writes_one_event_per_change(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound(subject="Asunto original"))
    tid = out.ticket_id
    tag = Tag("cedula", "model", 0.72, "v3", "Cédula de identidad", ["cédula", "renovar"])
    t = await store.update_ticket(tid, TicketChanges(status=TicketStatus.OPEN, assignee="ana@gub.uy", queue="DNIC",
                                                     priority="high", tags={"tramite": tag}, subject="Nuevo asunto",
                                                     meta={"sla": "24h"}), "agent:ana")
    assert (t.status, t.assignee, t.queue, t.priority, t.subject) == ("open", "ana@gub.uy", "DNIC", "high",
                                                                      "Nuevo asunto")
    assert t.tags["tramite"] == tag and t.meta == {"account": "consultas@gub.uy", "sla": "24h"}
    events = [e for e in await store.list_events(ticket_id=tid) if e.actor == "agent:ana"]
    assert [e.kind for e in events] == [EventKind.STATUS, EventKind.ASSIGNED, EventKind.QUEUE, EventKind.PRIORITY,
                                        EventKind.TAGGED]
    assert events[0].data == {"from": "new", "to": "open"}
    assert events[1].data == {"from": None, "to": "ana@gub.uy"}
    assert events[4].data["tag"] == "tramite" and events[4].data["value"] == "cedula"
    # the new subject is searchable, the old one is not
    assert {x.id for x in (await store.list_tickets(TicketFilter(text="nuevo"))).items} == {tid}
    assert (await store.list_tickets(TicketFilter(text="original"))).items == []
    # no change, no event
    before = len(await store.list_events(ticket_id=tid))
    await store.update_ticket(tid, TicketChanges(status=TicketStatus.OPEN, assignee="ana@gub.uy"), "agent:ana")
    assert len(await store.list_events(ticket_id=tid)) == before
    t = await store.update_ticket(tid, TicketChanges(unassign=True, status=TicketStatus.RESOLVED), "agent:ana")
    assert t.assignee is None and t.resolved_at is not None
    assert await store.count_tickets(TicketFilter(unassigned=True)) == 1
    t = await store.update_ticket(tid, TicketChanges(status=TicketStatus.OPEN), "agent:ana")
    assert t.resolved_at is None
    with pytest.raises(ValueError):
        await store.update_ticket(tid, TicketChanges(status="bogus"), "agent:ana")
    with pytest.raises(NotFound):
        await store.update_ticket("no-such-ticket", TicketChanges(status=TicketStatus.OPEN), "agent:ana")


async def test_concurrent_updates_keep_every_event(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound())
    queues = [f"Q{i}" for i in range(8)]
    await asyncio.gather(*[store.update_ticket(out.ticket_id, TicketChanges(queue=q), "a") for q in queues])
    events = await store.list_events(ticket_id=out.ticket_id, kinds=[EventKind.QUEUE])
    assert len(events) == len(queues)
    chain = [e.data for e in events]
    assert chain[0]["from"] is None
    assert all(chain[i]["to"] == chain[i + 1]["from"] for i in range(len(chain) - 1))  # each saw the previous one
    assert (await store.get_ticket(out.ticket_id)).queue == chain[-1]["to"]
