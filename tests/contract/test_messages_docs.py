"""Outgoing messages (add_message, set_delivery), named documents, and erasing a person."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inbox.domain import (
    Attachment,
    DeliveryStatus,
    Direction,
    EventKind,
    Message,
    TicketFilter,
    utcnow,
)
from inbox.ingest import Pipeline
from inbox.store.base import JobSpec, NewEvent, NotFound, Store

from .factory import inbound


def _reply(ticket_id: str, n: int, direction: str = Direction.OUT, **kw: object) -> Message:
    return Message(id=f"m_out_{ticket_id}_{n}", ticket_id=ticket_id, direction=direction, channel="email",
                   account="consultas@gub.uy", external_id=None, author=None, text=f"Respuesta {n} sobre la cédula",
                   subject="Re: Consulta", delivery_status=DeliveryStatus.QUEUED if direction == Direction.OUT
                   else None, author_user="ana@gub.uy", received_at=utcnow() + timedelta(seconds=n), **kw)


async def test_add_message_reply_and_note(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound(subject="Consulta", text="hola"))
    tid = out.ticket_id
    before = await store.get_ticket(tid)
    assert before.first_response_at is None
    att = Attachment("respuesta.pdf", "application/pdf", 1234, "ab" * 32)
    reply = _reply(tid, 1, attachments=[att], meta={"conversation_id": None, "k": [1, 2]})
    job = JobSpec("deliver", {"message_id": reply.id}, dedupe_key=f"deliver:{reply.id}")
    stored = await store.add_message(reply, "ana@gub.uy", [NewEvent("custom.audit", {"why": "test"})], [job])
    assert stored.id == reply.id
    t = await store.get_ticket(tid)
    assert t.message_count == 2 and t.first_response_at is not None
    assert t.last_activity_at >= before.last_activity_at
    got = await store.get_message(reply.id)
    assert got is not None and got.direction == "out" and got.delivery_status == "queued"
    assert got.attachments == [att] and got.author_user == "ana@gub.uy" and got.meta == {"conversation_id": None,
                                                                                         "k": [1, 2]}
    assert got.external_id is None and got.author is None
    kinds = [e.kind for e in await store.list_events(ticket_id=tid)]
    assert kinds[-2:] == [EventKind.REPLY_QUEUED, "custom.audit"]
    [deliver] = await store.list_jobs(kind="deliver")
    assert deliver.id == f"deliver:{reply.id}" and deliver.payload == {"message_id": reply.id}
    # a second reply: two outgoing messages without an external id do not clash; first response stays
    first_response = t.first_response_at
    await store.add_message(_reply(tid, 2), "ana@gub.uy", [], [])
    note = _reply(tid, 3, direction=Direction.NOTE)
    await store.add_message(note, "ana@gub.uy", [], [])
    t = await store.get_ticket(tid)
    assert t.message_count == 4 and t.first_response_at == first_response
    assert [m.direction for m in await store.list_messages(tid)] == ["in", "out", "out", "note"]
    assert (await store.list_events(ticket_id=tid))[-1].kind == EventKind.MESSAGE_ADDED  # a note
    # outgoing text is searchable too
    assert {x.id for x in (await store.list_tickets(TicketFilter(text="respuesta cedula"))).items} == {tid}
    with pytest.raises(NotFound):
        await store.add_message(_reply("no-such-ticket", 9), "ana@gub.uy", [], [])


async def test_note_does_not_count_as_first_response(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound())
    await store.add_message(_reply(out.ticket_id, 1, direction=Direction.NOTE), "ana@gub.uy", [], [])
    await store.add_message(_reply(out.ticket_id, 2), "ana@gub.uy", [], [], first_response=False)
    assert (await store.get_ticket(out.ticket_id)).first_response_at is None


async def test_set_delivery(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound())
    sent, failed = _reply(out.ticket_id, 1), _reply(out.ticket_id, 2)
    await store.add_message(sent, "ana@gub.uy", [], [])
    await store.add_message(failed, "ana@gub.uy", [], [])
    await store.set_delivery(sent.id, DeliveryStatus.SENT, "system:outbox", external_id="<sent-1@gub.uy>")
    await store.set_delivery(failed.id, DeliveryStatus.FAILED, "system:outbox", error="mailbox full")
    s = await store.get_message(sent.id)
    f = await store.get_message(failed.id)
    assert (s.delivery_status, s.external_id, s.delivery_error) == ("sent", "<sent-1@gub.uy>", None)
    assert (f.delivery_status, f.external_id, f.delivery_error) == ("failed", None, "mailbox full")
    events = await store.list_events(ticket_id=out.ticket_id, kinds=[EventKind.REPLY_SENT, EventKind.REPLY_FAILED])
    assert [(e.kind, e.data["message_id"], e.actor) for e in events] == [
        (EventKind.REPLY_SENT, sent.id, "system:outbox"), (EventKind.REPLY_FAILED, failed.id, "system:outbox")]
    assert events[0].data["external_id"] == "<sent-1@gub.uy>" and events[1].data["error"] == "mailbox full"
    # the citizen's answer to the sent message threads into the ticket by its new external id
    answer = await pipeline.ingest(inbound(in_reply_to="<sent-1@gub.uy>", sender="otra@example.uy"))
    assert answer.ticket_id == out.ticket_id
    with pytest.raises(NotFound):
        await store.set_delivery("no-such-message", DeliveryStatus.SENT, "system:outbox")
    assert await store.get_message("no-such-message") is None


async def test_docs_crud(store: Store) -> None:
    assert await store.get_doc("users", "ana@gub.uy") is None
    user = {"email": "ana@gub.uy", "name": "Ana Núñez", "role": "agent", "queues": ["DNIC", "MEC"],
            "capacity": 10, "active": True, "nested": {"a.b": {"$odd": None}}}
    await store.put_doc("users", "ana@gub.uy", user)
    assert await store.get_doc("users", "ana@gub.uy") == user
    await store.put_doc("users", "ana@gub.uy", {**user, "capacity": 5})
    assert (await store.get_doc("users", "ana@gub.uy"))["capacity"] == 5
    await store.put_doc("users", "beto@gub.uy", {"email": "beto@gub.uy"})
    await store.put_doc("channel_health", "email:consultas@gub.uy", {"ok": True, "at": utcnow()})
    await store.put_doc("cursors", "imap:consultas@gub.uy:INBOX", {"uidvalidity": 7, "last_uid": 42})
    assert [k for k, _ in await store.list_docs("users")] == ["ana@gub.uy", "beto@gub.uy"]
    assert len(await store.list_docs("users", limit=1)) == 1
    health = await store.get_doc("channel_health", "email:consultas@gub.uy")
    assert health["ok"] is True and isinstance(health["at"], str)  # times come back as text from both stores
    assert await store.get_doc("cursors", "imap:consultas@gub.uy:INBOX") == {"uidvalidity": 7, "last_uid": 42}
    assert await store.get_doc("users", "imap:consultas@gub.uy:INBOX") is None  # collections are apart
    assert await store.delete_doc("users", "ana@gub.uy")
    assert not await store.delete_doc("users", "ana@gub.uy")
    assert [k for k, _ in await store.list_docs("users")] == ["beto@gub.uy"]
    assert await store.list_docs("nothing-here") == []


async def test_erase_contact(store: Store, pipeline: Pipeline) -> None:
    shared_raw = b"the same raw bytes reached two people"
    a1 = await pipeline.ingest(inbound(sender="borrar@example.uy", subject="Cédula", text="mi cédula 1234567",
                                       external_id="<b1@x>"))
    a2 = await pipeline.ingest(inbound(sender="borrar@example.uy", subject="Otra", raw=shared_raw))
    keep = await pipeline.ingest(inbound(sender="queda@example.uy", subject="Cédula también", raw=shared_raw))
    reply = await pipeline.ingest(inbound(sender="borrar@example.uy", in_reply_to="<b1@x>", text="gracias"))
    assert reply.ticket_id == a1.ticket_id
    contact = await store.find_contact_by_identity("email", "borrar@example.uy")
    other = await pipeline.ingest(inbound(sender="alias@example.uy"))
    other_contact = (await store.get_ticket(other.ticket_id)).contact_id
    await store.merge_contacts(contact.id, other_contact, "agent:x")

    refs = await store.erase_contact(contact.id, "agent:dpo")
    assert sorted(refs) == sorted({a1.raw_ref, reply.raw_ref, other.raw_ref})  # the shared raw is still used
    assert await store.get_contact(contact.id) is None
    assert await store.get_contact(other_contact) is None
    assert await store.find_contact_by_identity("email", "borrar@example.uy") is None
    assert await store.find_contact_by_identity("email", "alias@example.uy") is None
    for r in (a1, a2, other):
        assert await store.get_ticket(r.ticket_id) is None
        assert await store.list_messages(r.ticket_id) == []
        assert all(e.data == {} for e in await store.list_events(ticket_id=r.ticket_id))
    assert not await store.message_exists("email", "consultas@gub.uy", "<b1@x>")
    assert {t.id for t in (await store.list_tickets(TicketFilter(text="cedula"))).items} == {keep.ticket_id}
    assert await store.count_tickets() == 1
    [erased] = await store.list_events(kinds=["contact.erased"])
    assert erased.actor == "agent:dpo" and erased.data["contact_id"] == contact.id
    assert await store.erase_contact("nobody", "agent:dpo") == []
