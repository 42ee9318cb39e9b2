"""Data protection: retention anonymizes (or deletes) what it must and nothing else; erasing a person removes their
data everywhere (tickets, messages, raw archive, attachments, search index, survey answers, labels, notifications)
while other people's data, even sharing the same files, stays; export returns everything about them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from inbox.domain import InboundAttachment, TicketFilter, utcnow
from inbox.store.base import TicketChanges
from tests.conftest import make_settings
from tests.quality.conftest import inbound
from workers.outbox import queue_reply
from workers.quality import csat, retention
from workers.runtime import close_runtime, open_runtime

PDF = b"%PDF-1.4 formulario de renovacion"
POLICIES = [{"channel": "email", "months": 24, "action": "anonymize"},
            {"channel": "x", "months": 36, "action": "delete"}]


async def put(rt, msg):
    outcome = await rt.pipeline.ingest(msg)
    assert outcome.status == "ingested"
    return await rt.store.get_ticket(outcome.ticket_id)


async def snapshot(rt, ticket_id: str) -> dict:
    t = await rt.store.get_ticket(ticket_id)
    contact = await rt.store.get_contact(t.contact_id)
    return {"ticket": asdict(t), "messages": [asdict(m) for m in await rt.store.list_messages(ticket_id)],
            "contact": asdict(contact)}


async def search(rt, text: str) -> set[int]:
    return {t.number for t in (await rt.store.list_tickets(TicketFilter(text=text), limit=100)).items}


async def test_retention_anonymizes_what_it_must_and_nothing_else(tmp_path) -> None:
    rt = await open_runtime(make_settings(tmp_path / "data", **{"retention.enabled": True,
                                                                "retention.policies": POLICIES}))
    try:
        ana = await put(rt, inbound("ana@example.com", name="Ana Pérez", text="Mi pasaporte 1234 venció",
                                    subject="Pasaporte Ana", attachments=[InboundAttachment(
                                        "cedula_ana.pdf", "application/pdf", PDF, len(PDF))]))
        await rt.store.update_ticket(ana.id, TicketChanges(queue="DNIC"), "agente@gub.uy")
        await queue_reply(rt, ana, "Estimada Ana: puede renovarlo en línea.", "agente@gub.uy")
        await csat.record_answer(rt, ana.id, 5, "Gracias, Ana")
        await rt.store.put_doc("labels", ana.id, {"ticket_id": ana.id, "text": "Mi pasaporte 1234 venció"})
        beto_mail = await put(rt, inbound("beto@example.com", name="Beto Gómez", text="Consulta por cédula",
                                          subject="Cédula"))
        beto_x = await put(rt, inbound("777", channel="x", name="@beto", text="hola por X sobre mi trámite",
                                       subject=None))
        await rt.store.merge_contacts(beto_mail.contact_id, beto_x.contact_id, "agente@gub.uy")
        dora_x = await put(rt, inbound("888", channel="x", name="@dora", text="reclamo de Dora", subject=None))
        refs = {t.id: [m.raw_ref for m in await rt.store.list_messages(t.id) if m.raw_ref]
                for t in (ana, beto_mail, beto_x, dora_x)}
        before = {t.id: await snapshot(rt, t.id) for t in (beto_x, dora_x)}
        before_beto_contact = await rt.store.get_contact(beto_mail.contact_id)

        # nothing is old enough today
        assert (await retention.run_retention(rt))["anonymized"] == 0

        # 30 months later: e-mail tickets (24 months) are anonymized, X tickets (36 months) are not
        result = await retention.run_retention(rt, now=utcnow() + timedelta(days=30 * 31))
        assert result["anonymized"] == 2 and result["deleted"] == 0
        assert result["attachment_files"] == 1 and result["raw_files"] == 2 and result["contacts"] == 1

        t = await rt.store.get_ticket(ana.id)
        assert t.status == "closed" and t.subject == "[anonimizado]" and t.meta["anonymized_at"]
        assert (t.number, t.channel, t.queue, t.created_at, t.first_response_at) == (
            ana.number, "email", "DNIC", ana.created_at, t.first_response_at)
        msgs = await rt.store.list_messages(ana.id)
        assert len(msgs) == 2 and {m.text for m in msgs} == {"[anonimizado]"}
        assert all(m.html is None and m.author is None and m.raw_ref is None for m in msgs)
        assert msgs[0].attachments[0].filename == "[anonimizado]" and msgs[0].attachments[0].sha256 is None
        assert msgs[0].attachments[0].size == len(PDF)  # type and size stay for statistics
        assert msgs[0].external_id  # still recognised as a duplicate if fetched again
        assert not any(rt.archive.exists(r) for r in refs[ana.id] + refs[beto_mail.id])
        assert not rt.attachments.path_for(__import__("hashlib").sha256(PDF).hexdigest()).exists()
        # the person: Ana has nothing else, so she is anonymized; Beto still has an X ticket
        contact = await rt.store.get_contact(ana.contact_id)
        assert contact.name == "[anonimizado]" and contact.identities == []
        assert await rt.store.find_contact_by_identity("email", "ana@example.com") is None
        assert await rt.store.get_contact(beto_mail.contact_id) == before_beto_contact
        # search index, survey comment (rating kept), training label
        assert await search(rt, "pasaporte") == set() and await search(rt, "Ana") == set()
        assert await search(rt, "cédula") == set()
        answer = await rt.store.get_doc("csat", ana.id)
        assert answer["rating"] == 5 and answer["comment"] == "[anonimizado]"
        assert await rt.store.get_doc("labels", ana.id) is None
        # nothing else changed
        for tid, snap in before.items():
            assert await snapshot(rt, tid) == snap
        assert all(rt.archive.exists(r) for r in refs[beto_x.id] + refs[dora_x.id])
        assert await search(rt, "reclamo") == {dora_x.number}
        events = await rt.store.list_events(kinds=["ticket.anonymized"])
        assert sorted(e.ticket_id for e in events) == sorted([ana.id, beto_mail.id])
        assert {e.actor for e in events} == {"system:retention"}
        # running again changes nothing
        again = await retention.run_retention(rt, now=utcnow() + timedelta(days=30 * 31))
        assert again == {"anonymized": 0, "deleted": 0, "raw_files": 0, "attachment_files": 0, "contacts": 0}

        # 40 months later: the X tickets are deleted; Dora has nothing left and is erased; Beto is anonymized
        result = await retention.run_retention(rt, now=utcnow() + timedelta(days=40 * 31))
        assert result["deleted"] == 2 and result["contacts"] == 2
        assert await rt.store.get_ticket(dora_x.id) is None and await rt.store.get_ticket(beto_x.id) is None
        assert await rt.store.get_contact(dora_x.contact_id) is None
        beto = await rt.store.get_contact(beto_mail.contact_id)
        assert beto.identities == [] and beto.name == "[anonimizado]"
        assert await rt.store.get_ticket(beto_mail.id) is not None  # anonymized tickets stay for statistics
        assert not any(rt.archive.exists(r) for r in refs[beto_x.id] + refs[dora_x.id])
        assert await search(rt, "reclamo") == set()
    finally:
        await close_runtime(rt)


async def test_erase_removes_one_person_everywhere(rt) -> None:
    shared_raw = b"the same forwarded chain letter"
    ana1 = await put(rt, inbound("ana@example.com", name="Ana Pérez", text="Mi pasaporte quedó retenido",
                                 subject="Pasaporte", attachments=[InboundAttachment(
                                     "formulario.pdf", "application/pdf", PDF, len(PDF)),
                                     InboundAttachment("foto_ana.jpg", "image/jpeg", b"JPEG ana", 8)]))
    ana2 = await put(rt, inbound("ana@example.com", name="Ana Pérez", text="Otra consulta de zanahorias",
                                 subject="Segunda", raw=shared_raw))
    await queue_reply(rt, ana1, "Respuesta a Ana", "agente@gub.uy")
    await csat.record_answer(rt, ana1.id, 2, "lento")
    await rt.store.put_doc("labels", ana1.id, {"ticket_id": ana1.id, "text": "pasaporte"})
    await rt.store.put_doc("notifications", f"sla:x:{ana1.id}", {"ticket_id": ana1.id, "subject": "Pasaporte"})
    beto = await put(rt, inbound("beto@example.com", name="Beto Gómez", text="Consulta de zanahorias también",
                                 subject="Beto", raw=shared_raw + b" ",  # a different raw...
                                 attachments=[InboundAttachment("formulario.pdf", "application/pdf", PDF,
                                                                len(PDF))]))  # ...but the same attachment
    beto_shared = await put(rt, inbound("beto@example.com", name="Beto Gómez", text="reenvío", subject="Reenvío",
                                        raw=shared_raw))  # the very same raw bytes as one of Ana's
    before = await snapshot(rt, beto.id)

    export = await retention.export_contact(rt, ana1.contact_id)
    assert export["contact"]["identities"][0]["value"] == "ana@example.com"
    assert [t["number"] for t in export["tickets"]] == sorted([ana1.number, ana2.number])
    first = next(t for t in export["tickets"] if t["number"] == ana1.number)
    assert [m["text"] for m in first["messages"]] == ["Mi pasaporte quedó retenido", "Respuesta a Ana"]
    assert first["survey"]["rating"] == 2

    ana_msgs = await rt.store.list_messages(ana1.id) + await rt.store.list_messages(ana2.id)
    ana_raw = {m.raw_ref for m in ana_msgs if m.raw_ref}
    jpeg = next(a.sha256 for a in ana_msgs[0].attachments if a.filename == "foto_ana.jpg")
    pdf = next(a.sha256 for a in ana_msgs[0].attachments if a.filename == "formulario.pdf")
    result = await retention.erase_contact(rt, ana1.contact_id, "admin@gub.uy")
    assert result["tickets"] == 2

    # tickets, messages, contact, identities
    assert await rt.store.get_ticket(ana1.id) is None and await rt.store.get_ticket(ana2.id) is None
    assert await rt.store.list_messages(ana1.id) == [] and await rt.store.list_messages(ana2.id) == []
    assert await rt.store.get_contact(ana1.contact_id) is None
    assert await rt.store.find_contact_by_identity("email", "ana@example.com") is None
    assert await rt.store.search_contacts("Ana") == []
    # search index
    assert await search(rt, "pasaporte") == set() and await search(rt, "Pérez") == set()
    assert await search(rt, "zanahorias") == {beto.number}
    # raw archive and attachments: Ana's go, those another message still uses stay
    shared_ref = (await rt.store.list_messages(beto_shared.id))[0].raw_ref
    assert shared_ref in ana_raw and rt.archive.exists(shared_ref)
    assert not any(rt.archive.exists(r) for r in ana_raw - {shared_ref})
    assert not rt.attachments.exists(jpeg) and rt.attachments.exists(pdf)
    # documents about her tickets
    assert await rt.store.get_doc("csat", ana1.id) is None
    assert await rt.store.get_doc("labels", ana1.id) is None
    assert await rt.store.get_doc("notifications", f"sla:x:{ana1.id}") is None
    # events keep who did what and when, not the content
    assert all(e.data == {} for e in await rt.store.list_events(ticket_id=ana1.id, limit=1000))
    erased = await rt.store.list_events(kinds=["contact.erased"])
    assert [(e.actor, e.data["contact_id"]) for e in erased] == [("admin@gub.uy", ana1.contact_id)]
    # Beto is untouched
    assert await snapshot(rt, beto.id) == before
