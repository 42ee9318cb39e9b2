"""Ingest through the real pipeline: dedupe, threading hints, ticket numbers under concurrency, events."""

from __future__ import annotations

import asyncio

from inbox.archive import RawArchive
from inbox.domain import EventKind, TicketFilter, TicketStatus
from inbox.ingest import Pipeline
from inbox.store.base import Store, TicketChanges

from .factory import inbound


async def test_new_message_opens_a_ticket(store: Store, pipeline: Pipeline, archive: RawArchive) -> None:
    msg = inbound(subject="Renovación de pasaporte", text="¿Qué documentos necesito?")
    out = await pipeline.ingest(msg)
    assert out.status == "ingested" and out.ticket_number and out.message_id
    ticket = await store.get_ticket(out.ticket_id)
    assert ticket is not None and ticket.number == out.ticket_number
    assert ticket.status == TicketStatus.NEW and ticket.channel == "email" and ticket.message_count == 1
    assert ticket.subject == "Renovación de pasaporte" and ticket.meta == {"account": "consultas@gub.uy"}
    assert (await store.get_ticket_by_number(out.ticket_number)).id == ticket.id
    assert await store.get_ticket_by_number(999_999) is None
    [m] = await store.list_messages(ticket.id)
    assert m.id == out.message_id and m.direction == "in" and m.text == "¿Qué documentos necesito?"
    assert m.external_id == msg.external_id and m.raw_ref == out.raw_ref and archive.exists(m.raw_ref)
    assert m.author is not None and m.author.key == ("email", "ana@example.uy") and m.author.display_name == "Ana Pérez"
    assert m.meta["thread_rule"] == "new"
    assert (await store.get_message(m.id)).text == m.text
    contact = await store.get_contact(ticket.contact_id)
    assert contact is not None and contact.name == "Ana Pérez"
    [job] = await store.list_jobs(kind="triage")
    assert job.payload == {"ticket_id": ticket.id} and job.status == "ready"


async def test_dedupe_same_input_twice_is_one_message(store: Store, pipeline: Pipeline) -> None:
    msg = inbound()
    first = await pipeline.ingest(msg)
    again = await pipeline.ingest(inbound(external_id=msg.external_id, text="otro cuerpo, mismo id"))
    assert first.status == "ingested" and again.status == "duplicate"
    assert await store.message_exists("email", "consultas@gub.uy", msg.external_id)
    assert not await store.message_exists("email", "otra@gub.uy", msg.external_id)
    assert len(await store.list_messages(first.ticket_id)) == 1
    assert (await store.get_ticket(first.ticket_id)).message_count == 1
    assert await store.count_tickets() == 1
    assert len(await store.list_jobs(kind="triage")) == 1
    # the same external id on another account or channel is another message
    other = await pipeline.ingest(inbound(external_id=msg.external_id, account="otra@gub.uy"))
    assert other.status == "ingested" and other.ticket_id != first.ticket_id


async def test_concurrent_duplicates_store_one_message(store: Store, pipeline: Pipeline) -> None:
    msg = inbound()
    outs = await asyncio.gather(*[pipeline.ingest(inbound(external_id=msg.external_id)) for _ in range(5)])
    assert sorted(o.status for o in outs) == ["duplicate"] * 4 + ["ingested"]
    assert await store.count_tickets() == 1
    [t] = (await store.list_tickets()).items
    assert t.message_count == 1 and len(await store.list_messages(t.id)) == 1


async def test_thread_by_references(store: Store, pipeline: Pipeline) -> None:
    first = await pipeline.ingest(inbound(external_id="<a@example.uy>"))
    reply = await pipeline.ingest(inbound(in_reply_to="<a@example.uy>", subject="Re: Consulta"))
    assert reply.ticket_id == first.ticket_id
    deep = await pipeline.ingest(inbound(references=["<zzz@elsewhere>", "<a@example.uy>"], subject="Re: Re"))
    assert deep.ticket_id == first.ticket_id
    msgs = await store.list_messages(first.ticket_id)
    assert [m.id for m in msgs] == [first.message_id, reply.message_id, deep.message_id]
    assert msgs[1].meta["thread_rule"] == "references"
    t = await store.get_ticket(first.ticket_id)
    assert t.message_count == 3 and t.last_activity_at >= msgs[0].received_at.replace(microsecond=0)
    # references on another channel do not thread
    elsewhere = await pipeline.ingest(inbound(channel="web", in_reply_to="<a@example.uy>"))
    assert elsewhere.ticket_id != first.ticket_id
    assert await store.find_ticket_by_external_ids("email", []) is None
    assert await store.find_ticket_by_external_ids("email", ["<nope>", "<a@example.uy>"]) == first.ticket_id


async def test_thread_by_conversation(store: Store, pipeline: Pipeline) -> None:
    kw = {"channel": "x", "account": "gubuy", "kind": "x", "sender": "111", "subject": None}
    first = await pipeline.ingest(inbound(conversation_id="conv-1", **kw))
    second = await pipeline.ingest(inbound(conversation_id="conv-1", **kw))
    other_conv = await pipeline.ingest(inbound(conversation_id="conv-2", **kw))
    other_account = await pipeline.ingest(inbound(conversation_id="conv-1", **{**kw, "account": "otra"}))
    assert second.ticket_id == first.ticket_id
    assert len({first.ticket_id, other_conv.ticket_id, other_account.ticket_id}) == 3
    assert await store.find_ticket_by_conversation("x", "gubuy", "conv-1") == first.ticket_id
    assert await store.find_ticket_by_conversation("x", "gubuy", "conv-9") is None


async def test_thread_by_ticket_number_checks_the_sender(store: Store, pipeline: Pipeline) -> None:
    first = await pipeline.ingest(inbound(sender="ana@example.uy"))
    same = await pipeline.ingest(inbound(sender="ANA@example.uy", ticket_number=first.ticket_number,
                                         subject=f"Re: [#{first.ticket_number}] Consulta"))
    assert same.ticket_id == first.ticket_id
    stranger = await pipeline.ingest(inbound(sender="intruso@example.uy", ticket_number=first.ticket_number))
    assert stranger.ticket_id != first.ticket_id
    unknown = await pipeline.ingest(inbound(sender="ana@example.uy", ticket_number=999_999))
    assert unknown.ticket_id not in (first.ticket_id, stranger.ticket_id)
    assert (await store.get_ticket(first.ticket_id)).message_count == 2


async def test_reply_reopens_resolved_but_not_closed(store: Store, pipeline: Pipeline) -> None:
    first = await pipeline.ingest(inbound(external_id="<r1@x>"))
    await store.update_ticket(first.ticket_id, TicketChanges(status=TicketStatus.RESOLVED), "agent:a")
    assert (await store.get_ticket(first.ticket_id)).resolved_at is not None
    again = await pipeline.ingest(inbound(in_reply_to="<r1@x>"))
    assert again.ticket_id == first.ticket_id
    t = await store.get_ticket(first.ticket_id)
    assert t.status == TicketStatus.OPEN and t.resolved_at is None
    statuses = [e.data for e in await store.list_events(ticket_id=t.id, kinds=[EventKind.STATUS])]
    assert statuses == [{"from": "new", "to": "resolved"}, {"from": "resolved", "to": "open"}]
    # an auto-reply does not reopen
    await store.update_ticket(t.id, TicketChanges(status=TicketStatus.RESOLVED), "agent:a")
    await pipeline.ingest(inbound(in_reply_to="<r1@x>", flags=["auto_reply"]))
    assert (await store.get_ticket(t.id)).status == TicketStatus.RESOLVED
    # a closed ticket is never threaded into
    await store.update_ticket(t.id, TicketChanges(status=TicketStatus.CLOSED), "agent:a")
    late = await pipeline.ingest(inbound(in_reply_to="<r1@x>"))
    assert late.ticket_id != t.id


async def test_twenty_concurrent_ingests_get_distinct_numbers(store: Store, pipeline: Pipeline) -> None:
    msgs = [inbound(sender=f"p{i}@example.uy", subject=f"Consulta {i}") for i in range(20)]
    outs = await asyncio.gather(*[pipeline.ingest(m) for m in msgs])
    numbers = [o.ticket_number for o in outs]
    assert all(o.status == "ingested" for o in outs)
    assert len(set(numbers)) == 20
    assert max(numbers) - min(numbers) < 40  # consecutive-ish: no runaway allocation
    tickets = [t async for t in _all_tickets(store)]
    assert sorted(t.number for t in tickets) == sorted(numbers)
    assert all(t.message_count == 1 for t in tickets)


async def test_twenty_concurrent_ingests_from_one_new_sender(store: Store, pipeline: Pipeline) -> None:
    outs = await asyncio.gather(*[pipeline.ingest(inbound(sender="nueva@example.uy", subject=f"S{i}"))
                                  for i in range(20)])
    assert all(o.status == "ingested" for o in outs)
    assert len({o.ticket_number for o in outs}) == 20
    contact = await store.find_contact_by_identity("email", "nueva@example.uy")
    assert contact is not None
    assert await store.count_tickets(TicketFilter(contact_id=contact.id)) == 20
    assert len(await store.list_events(kinds=[EventKind.CONTACT_CREATED], limit=1000)) == 1


async def test_concurrent_replies_to_one_ticket_count_every_message(store: Store, pipeline: Pipeline) -> None:
    first = await pipeline.ingest(inbound(external_id="<root@x>"))
    outs = await asyncio.gather(*[pipeline.ingest(inbound(in_reply_to="<root@x>")) for _ in range(10)])
    assert {o.ticket_id for o in outs} == {first.ticket_id}
    t = await store.get_ticket(first.ticket_id)
    assert t.message_count == 11 == len(await store.list_messages(t.id))


async def test_events_order_after_seq_and_per_ticket(store: Store, pipeline: Pipeline) -> None:
    a = await pipeline.ingest(inbound(sender="a@example.uy", external_id="<ea@x>"))
    b = await pipeline.ingest(inbound(sender="b@example.uy"))
    await pipeline.ingest(inbound(sender="a@example.uy", in_reply_to="<ea@x>"))
    all_events = await store.list_events(limit=1000)
    seqs = [e.seq for e in all_events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds_a = [e.kind for e in await store.list_events(ticket_id=a.ticket_id)]
    assert kinds_a == [EventKind.TICKET_CREATED, EventKind.MESSAGE_ADDED, EventKind.MESSAGE_ADDED]
    created = [e for e in all_events if e.kind == EventKind.TICKET_CREATED]
    assert [e.ticket_id for e in created] == [a.ticket_id, b.ticket_id]
    assert created[0].data == {"number": a.ticket_number, "channel": "email",
                               "contact_id": (await store.get_ticket(a.ticket_id)).contact_id}
    assert all(e.actor == "system:ingest" for e in all_events)
    contact_events = [e for e in all_events if e.kind == EventKind.CONTACT_CREATED]
    assert len(contact_events) == 2 and all(e.ticket_id is None for e in contact_events)
    # after_seq and limit page through the log in order
    middle = seqs[2]
    assert [e.seq for e in await store.list_events(after_seq=middle, limit=1000)] == [s for s in seqs if s > middle]
    paged, after = [], 0
    while batch := await store.list_events(after_seq=after, limit=2):
        paged.extend(e.seq for e in batch)
        after = batch[-1].seq
    assert paged == seqs
    assert await store.list_events(after_seq=seqs[-1]) == []
    # appended events come after, with a greater sequence number
    seq = await store.append_event("custom.kind", b.ticket_id, "agent:z", {"x": [1, "dos"]})
    assert seq > seqs[-1]
    [last] = await store.list_events(after_seq=seqs[-1])
    assert (last.seq, last.kind, last.ticket_id, last.actor, last.data) == (seq, "custom.kind", b.ticket_id,
                                                                            "agent:z", {"x": [1, "dos"]})
    assert [e.kind for e in await store.list_events(ticket_id=b.ticket_id, kinds=["custom.kind"])] == ["custom.kind"]


async def _all_tickets(store: Store):
    cursor = None
    while True:
        page = await store.list_tickets(cursor=cursor, limit=100)
        for t in page.items:
            yield t
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
