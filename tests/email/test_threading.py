"""Thread rules and Message-ID dedupe, each one tested through the real pipeline (SQLite runtime)."""

from __future__ import annotations

import pytest

from adapters.email.parse import parse_message
from adapters.email.rules import normalize_subject, same_person_name
from inbox.domain import DeliveryStatus, TicketStatus
from inbox.store.base import TicketChanges
from tests.email.conftest import FIXTURES, OUR_ADDRESS, mail
from workers.outbox import queue_reply
from workers.runtime import Runtime


@pytest.fixture
async def ert(make_rt) -> Runtime:
    return await make_rt([{"name": "atencion", "address": OUR_ADDRESS},
                          {"name": "consultas", "address": "consultas@example.gub.uy"}])


async def ingest(rt: Runtime, data: bytes, account: str = "atencion"):
    inbound = parse_message(data, account, options=rt.services["email.parse_options"])
    outcome = await rt.pipeline.ingest(inbound)
    message = await rt.store.get_message(outcome.message_id) if outcome.message_id else None
    return outcome, message


async def sent_reply(rt: Runtime, ticket_number: int, text: str = "Respuesta") -> str:
    """An agent reply stored and marked sent, as the outbox does; returns its Message-ID."""
    ticket = await rt.store.get_ticket_by_number(ticket_number)
    assert ticket is not None
    msg = await queue_reply(rt, ticket, text, "agente@example.gub.uy", request_id=f"r{ticket_number}{text}")
    mid = f"{msg.id}@inbox.example.gub.uy"
    await rt.store.set_delivery(msg.id, DeliveryStatus.SENT, "system:outbox", external_id=mid)
    return mid


def test_normalize_subject() -> None:
    assert normalize_subject("RE: RV: [#1042] Solicitud de Partida") == "solicitud de partida"
    assert normalize_subject("Re: Re[2]: Consulta jubilación") == "consulta jubilacion"
    assert same_person_name("María José Pérez", "maria jose perez")
    assert not same_person_name("Ana", "Ana")


async def test_reply_to_our_message_id_lands_on_the_ticket(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1))
    ours = await sent_reply(ert, first.ticket_number)
    headers = {"In-Reply-To": f"<{ours}>", "References": f"<mail-1@example.com> <{ours}>"}
    reply, msg = await ingest(ert, mail(2, sender="persona1@example.com", subject="Re: Consulta 1", headers=headers))
    assert reply.ticket_number == first.ticket_number
    assert msg.meta["thread_rule"] == "references"


async def test_reference_to_the_citizens_own_earlier_mail(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1))
    again, _ = await ingest(ert, mail(2, sender="persona1@example.com", headers={"References": "<mail-1@example.com>"}))
    assert again.ticket_number == first.ticket_number


async def test_ticket_tag_from_the_contact(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1))
    tagged, msg = await ingest(ert, mail(2, sender="persona1@example.com",
                                         subject=f"RE: [#{first.ticket_number}] Consulta"))
    assert tagged.ticket_number == first.ticket_number and msg.meta["thread_rule"] == "ticket_number"


async def test_ticket_tag_from_a_stranger_opens_a_new_ticket(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1))
    other, msg = await ingest(ert, mail(2, sender="intruso@example.net", name="Otro Nombre",
                                        subject=f"[#{first.ticket_number}] hola"))
    assert other.ticket_number != first.ticket_number and msg.meta["thread_rule"] == "new"


async def test_ticket_tag_from_the_reply_to_address_we_answered(ert: Runtime) -> None:
    first, _ = await ingest(ert, (FIXTURES / "es14_reply_to_distinto.eml").read_bytes())
    back, msg = await ingest(ert, mail(2, sender="rosamendez1950@example.net", name="Rosa Méndez",
                                       subject=f"Re: [#{first.ticket_number}] Consulta"))
    assert back.ticket_number == first.ticket_number
    assert msg.meta["thread_rule"] == "email_ticket_tag_correspondent"


async def test_ticket_tag_from_a_second_address_of_the_same_person(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1, sender="mjperez@example.com", name="María José Pérez"))
    back, msg = await ingest(ert, mail(2, sender="maria.perez@trabajo.example.org", name="Maria Jose Perez",
                                       subject=f"[#{first.ticket_number}] otra consulta"))
    assert back.ticket_number == first.ticket_number
    assert msg.meta["thread_rule"] == "email_ticket_tag_correspondent"


async def test_outlook_reply_without_headers_or_tag_threads_by_subject(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1, subject="Partida de nacimiento"))
    back, msg = await ingest(ert, mail(2, sender="persona1@example.com", subject="RE: Partida de nacimiento"))
    assert back.ticket_number == first.ticket_number and msg.meta["thread_rule"] == "email_recent_subject"


async def test_subject_rule_needs_a_reply_prefix_same_contact_and_recent_ticket(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1, subject="Partida de nacimiento"))
    plain, _ = await ingest(ert, mail(2, sender="persona1@example.com", subject="Partida de nacimiento"))
    assert plain.ticket_number != first.ticket_number  # a new mail with the same subject is a new request
    stranger, _ = await ingest(ert, mail(3, subject="RE: Partida de nacimiento"))
    assert stranger.ticket_number != first.ticket_number
    old, _ = await ingest(ert, mail(4, sender="viejo@example.com", subject="Trámite viejo"))
    ticket = await ert.store.get_ticket_by_number(old.ticket_number)
    await ert.store.update_ticket(ticket.id, TicketChanges(status=TicketStatus.CLOSED), "test")
    late, _ = await ingest(ert, mail(5, sender="viejo@example.com", subject="Re: Trámite viejo"))
    assert late.ticket_number != old.ticket_number


async def test_subject_rule_ignores_tickets_idle_for_too_long(make_rt) -> None:
    rt = await make_rt([{"name": "atencion", "address": OUR_ADDRESS}], subject_thread_days=0)
    first, _ = await ingest(rt, mail(1, subject="Partida"))
    later, _ = await ingest(rt, mail(2, sender="persona1@example.com", subject="Re: Partida"))
    assert later.ticket_number != first.ticket_number


async def test_clerk_forward_is_a_new_ticket_with_the_original_sender_recorded(ert: Runtime) -> None:
    outcome, msg = await ingest(ert, (FIXTURES / "es10_reenvio_funcionario.eml").read_bytes())
    assert msg.meta["thread_rule"] == "new"
    assert msg.meta["forwarded"][0]["from"] == "jprodriguez1987@example.com"
    assert "Buenas tardes, mi madre tiene 72 años" in msg.text  # the forwarded request stays visible


async def test_bounce_lands_on_the_ticket_of_the_returned_mail(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1))
    ours = await sent_reply(ert, first.ticket_number)
    dsn = (FIXTURES / "flanker__bounce-zed.eml").read_bytes().replace(
        b"<20090708054735.GC7578@example.com>", f"<{ours}>".encode())
    bounce, msg = await ingest(ert, dsn)
    assert bounce.ticket_number == first.ticket_number and msg.flags == ["bounce"]


# -- Message-ID dedupe ---------------------------------------------------------------------------------------------
async def test_same_message_twice_is_one_message(ert: Runtime) -> None:
    a, _ = await ingest(ert, (FIXTURES / "es01_pasaporte_iso8859_qp.eml").read_bytes())
    b, _ = await ingest(ert, (FIXTURES / "es09_message_id_duplicado.eml").read_bytes())
    assert a.status == "ingested" and b.status == "duplicate"


async def test_same_message_in_two_of_our_mailboxes_is_one_message(ert: Runtime) -> None:
    a, _ = await ingest(ert, (FIXTURES / "es01_pasaporte_iso8859_qp.eml").read_bytes(), "atencion")
    b, _ = await ingest(ert, (FIXTURES / "es09_message_id_duplicado.eml").read_bytes(), "consultas")
    assert a.status == "ingested" and b.status == "duplicate"


async def test_different_mails_with_one_message_id_are_both_kept(ert: Runtime) -> None:
    a, first = await ingest(ert, mail(1, body="Primera consulta"))
    b, second = await ingest(ert, mail(1, body="Otra consulta distinta con el mismo Message-ID"))
    assert a.status == b.status == "ingested"
    assert second.external_id.startswith("mail-1@example.com#") and second.meta["message_id_collision"] == first.id
    c, _ = await ingest(ert, mail(1, body="Otra consulta distinta con el mismo Message-ID"))
    assert c.status == "duplicate"


async def test_our_own_sent_mail_coming_back_is_dropped(ert: Runtime) -> None:
    first, _ = await ingest(ert, mail(1))
    ours = await sent_reply(ert, first.ticket_number)
    loop = mail("loop", sender=OUR_ADDRESS).replace(b"<mail-loop@example.com>", f"<{ours}>".encode())
    outcome, _ = await ingest(ert, loop)
    assert outcome.status == "duplicate"


async def test_anonymized_message_without_hash_still_dedupes(ert: Runtime) -> None:
    a, msg = await ingest(ert, mail(1))
    with ert.store.conn:  # type: ignore[attr-defined]
        ert.store.conn.execute("UPDATE messages SET meta='{}' WHERE id=?", (msg.id,))  # type: ignore[attr-defined]
    b, _ = await ingest(ert, mail(1, body="cualquier cosa"))
    assert b.status == "duplicate"
