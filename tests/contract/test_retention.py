"""Retention on the store (workers/quality/retention.py): anonymize a ticket or a contact, delete a ticket."""

from __future__ import annotations

import pytest

from inbox.archive import RawArchive
from inbox.domain import Attachment, EventKind, InboundAttachment, Tag, TicketFilter, TicketStatus
from inbox.ingest import Pipeline
from inbox.store.base import NotFound, Store, TicketChanges

from .factory import inbound

P = "[anonimizado]"


async def test_anonymize_ticket(store: Store, pipeline: Pipeline, archive: RawArchive) -> None:
    shared = b"raw shared with another ticket"
    msg = inbound(sender="ana@example.uy", subject="Mi cédula 1.234.567-8", text="Soy Ana, cédula 1.234.567-8",
                  external_id="<anon@x>")
    msg.attachments = [InboundAttachment("cedula.jpg", "image/jpeg", b"JPEG...", 7)]
    msg.meta = {"x_kind": "dm", "ip": "10.0.0.1"}
    out = await pipeline.ingest(msg)
    reply = await pipeline.ingest(inbound(sender="ana@example.uy", in_reply_to="<anon@x>", raw=shared))
    other = await pipeline.ingest(inbound(sender="beto@example.uy", name="Beto", raw=shared))
    tid = out.ticket_id
    await store.update_ticket(tid, TicketChanges(tags={"tramite": Tag("cedula", "model", 0.8, "v1", "Cédula",
                                                                      ["cédula", "1.234.567-8"])}), "system:triage")
    [att_ref] = [a.sha256 for a in (await store.list_messages(tid))[0].attachments]
    assert await store.attachment_refs_in_use([att_ref, "f" * 64]) == {att_ref}

    refs = await store.anonymize_ticket(tid, "system:retention", P)
    assert refs == [out.raw_ref]  # the shared raw is still used by the other ticket
    t = await store.get_ticket(tid)
    assert t.status == TicketStatus.CLOSED and t.subject == P and t.resolved_at is not None
    assert t.tags["tramite"].value == "cedula" and t.tags["tramite"].why == []
    assert "anonymized_at" in t.meta and t.message_count == 2
    first, second = await store.list_messages(tid)
    assert first.text == second.text == P and first.subject == P and first.author is None and first.raw_ref is None
    assert first.html is None and first.external_id == "<anon@x>"
    assert first.attachments == [Attachment(P, "image/jpeg", 7, None, None, "anonymized")]
    assert first.meta == {"x_kind": "dm", "thread_rule": "new", "anonymized": True}
    assert await store.attachment_refs_in_use([att_ref]) == set()
    assert await store.message_exists("email", "consultas@gub.uy", "<anon@x>")  # still a duplicate when re-fetched
    assert (await pipeline.ingest(inbound(external_id="<anon@x>"))).status == "duplicate"
    tagged = await store.list_events(ticket_id=tid, kinds=[EventKind.TAGGED])
    assert tagged and all("why" not in e.data for e in tagged)
    kinds = [e.kind for e in await store.list_events(ticket_id=tid)]
    assert kinds[-2:] == [EventKind.STATUS, "ticket.anonymized"]
    assert (await store.list_tickets(TicketFilter(text="cedula"))).items == []
    assert (await store.list_tickets(TicketFilter(text="ana"))).items == []
    assert {x.id for x in (await store.list_tickets(TicketFilter(text="anonimizado"))).items} == {tid}
    assert reply.ticket_id == tid and other.ticket_id != tid
    with pytest.raises(NotFound):
        await store.anonymize_ticket("no-such-ticket", "system:retention", P)


async def test_anonymize_contact(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound(sender="ana@example.uy", name="Ana Núñez", subject="Trámite"))
    contact_id = (await store.get_ticket(out.ticket_id)).contact_id
    await store.anonymize_contact(contact_id, "system:retention", P)
    c = await store.get_contact(contact_id)
    assert c.name == P and c.identities == []
    assert await store.find_contact_by_identity("email", "ana@example.uy") is None
    assert (await store.list_tickets(TicketFilter(text="nunez"))).items == []
    assert {x.id for x in (await store.list_tickets(TicketFilter(text="tramite"))).items} == {out.ticket_id}
    assert [e.data for e in await store.list_events(kinds=["contact.anonymized"])] == [{"contact_id": contact_id}]
    with pytest.raises(NotFound):
        await store.anonymize_contact("nobody", "system:retention", P)


async def test_delete_ticket(store: Store, pipeline: Pipeline) -> None:
    out = await pipeline.ingest(inbound(subject="Borrar", external_id="<del@x>"))
    keep = await pipeline.ingest(inbound(subject="Queda"))
    refs = await store.delete_ticket(out.ticket_id, "system:retention")
    assert refs == [out.raw_ref]
    assert await store.get_ticket(out.ticket_id) is None and await store.list_messages(out.ticket_id) == []
    assert not await store.message_exists("email", "consultas@gub.uy", "<del@x>")
    events = await store.list_events(ticket_id=out.ticket_id)
    assert events[-1].kind == "ticket.deleted" and events[-1].data == {"number": out.ticket_number}
    assert all(e.data == {} for e in events[:-1])
    assert [t.id for t in (await store.list_tickets()).items] == [keep.ticket_id]
    assert (await store.list_tickets(TicketFilter(text="borrar"))).items == []
    with pytest.raises(NotFound):
        await store.delete_ticket(out.ticket_id, "system:retention")
