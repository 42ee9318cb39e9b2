"""Outbound: composing threaded replies, SMTP outcomes (aiosmtpd), the outbox deliver job, Sent, auto-ack."""

from __future__ import annotations

import email
import email.policy

import pytest

from adapters.email.parse import parse_message
from adapters.email.send import reply_subject, text_to_html
from inbox.channels import SendError
from inbox.domain import DeliveryStatus, Direction
from tests.email.conftest import OUR_ADDRESS, account, mail
from tests.support.dovecot import Dovecot
from tests.support.smtp import SmtpServer
from workers.jobs import run_one
from workers.outbox import queue_reply
from workers.runtime import Runtime


async def run_jobs_once(rt: Runtime, kinds: list[str] | None = None) -> list[str]:
    """Run every email job that is ready now (and the ones they enqueue); returns their outcomes."""
    kinds = kinds or ["email_ack", "deliver"]
    outcomes = []
    while (job := await rt.store.claim("test", kinds)) is not None:
        outcomes.append(await run_one(rt, job, "test"))
    return outcomes


async def citizen_ticket(rt: Runtime, data: bytes):
    inbound = parse_message(data, "atencion", options=rt.services["email.parse_options"])
    outcome = await rt.pipeline.ingest(inbound)
    return await rt.store.get_ticket(outcome.ticket_id)


@pytest.mark.parametrize("subject,expected", [
    ("Consulta pasaporte", "Re: Consulta pasaporte [#1042]"),
    ("Re: Consulta pasaporte", "Re: Consulta pasaporte [#1042]"),
    ("RE: [#1042] Solicitud de partida", "Re: Solicitud de partida [#1042]"),
    ("Re: Re: RV: Solicitud [#1042]", "Re: Solicitud [#1042]"),
    ("", "Re: Su consulta [#1042]"),
    (None, "Re: Su consulta [#1042]"),
])
def test_reply_subject_never_doubles_prefix_or_tag(subject: str | None, expected: str) -> None:
    assert reply_subject(subject, 1042) == expected


def test_text_to_html_escapes() -> None:
    assert "&lt;script&gt;" in text_to_html("<script>x</script>")


async def test_agent_reply_has_threading_headers_and_alternatives(make_rt, smtp_server: SmtpServer) -> None:
    rt = await make_rt([account("atencion", "x", smtp=smtp_server)])
    ticket = await citizen_ticket(rt, mail(1, subject="Consulta por pasaporte",
                                          headers={"References": "<older@example.com>"}))
    reply = await queue_reply(rt, ticket, "Estimada: el pasaporte demora 5 días.", "agente@example.gub.uy",
                              request_id="r1")
    assert await run_jobs_once(rt) == ["done"]
    [captured] = smtp_server.messages
    m = captured.mail
    assert captured.recipients == ["persona1@example.com"]
    assert m["Message-ID"] == f"<{reply.id}@inbox.example.gub.uy>"
    assert m["In-Reply-To"] == "<mail-1@example.com>"
    assert m["References"] == "<mail-1@example.com>"
    assert m["Subject"] == f"Re: Consulta por pasaporte [#{ticket.number}]"
    assert m["From"] == f"Atención Ciudadana <{OUR_ADDRESS}>"
    assert m["X-Inbox-Loop"] == OUR_ADDRESS and m["X-Inbox-Ticket"] == str(ticket.number)
    assert m.get_content_type() == "multipart/alternative"
    assert m.get_body(("plain",)).get_content().startswith("Estimada: el pasaporte")
    assert "<p>Estimada" in m.get_body(("html",)).get_content()
    stored = await rt.store.get_message(reply.id)
    assert stored.delivery_status == DeliveryStatus.SENT
    assert stored.external_id == f"{reply.id}@inbox.example.gub.uy"


async def test_reply_goes_to_reply_to_and_retry_reuses_message_id(make_rt, smtp_server: SmtpServer) -> None:
    rt = await make_rt([account("atencion", "x", smtp=smtp_server)])
    ticket = await citizen_ticket(rt, mail(1, headers={"Reply-To": "Hija <hija@example.net>"}))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    sender = rt.channels["email"]
    thread = await rt.store.list_messages(ticket.id)
    first = await sender.send(ticket, reply, thread)
    again = await sender.send(ticket, reply, thread)  # a retry after a crash between send and commit
    assert first == again
    assert [c.recipients for c in smtp_server.messages] == [["hija@example.net"], ["hija@example.net"]]
    assert smtp_server.messages[0].mail["Message-ID"] == smtp_server.messages[1].mail["Message-ID"]
    assert smtp_server.messages[0].mail["Date"] == smtp_server.messages[1].mail["Date"]


async def test_attachments_are_sent(make_rt, smtp_server: SmtpServer) -> None:
    from dataclasses import replace

    from inbox.domain import Attachment

    rt = await make_rt([account("atencion", "x", smtp=smtp_server)])
    ticket = await citizen_ticket(rt, mail(1))
    sha = rt.attachments.put(b"%PDF-1.4 test")
    reply = await queue_reply(rt, ticket, "Adjunto el formulario", "agente@example.gub.uy", request_id="r1")
    reply = replace(reply, attachments=[Attachment("formulario.pdf", "application/pdf", 13, sha)])
    await rt.channels["email"].send(ticket, reply, await rt.store.list_messages(ticket.id))
    parts = list(smtp_server.messages[0].mail.iter_attachments())
    assert [(p.get_filename(), p.get_content()) for p in parts] == [("formulario.pdf", b"%PDF-1.4 test")]


async def test_temporary_smtp_failure_is_retried(make_rt, smtp_server: SmtpServer) -> None:
    rt = await make_rt([account("atencion", "x", smtp=smtp_server)])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    smtp_server.fail_next("451 4.3.0 Mailbox busy, try later", times=2)
    with pytest.raises(SendError) as err:
        await rt.channels["email"].send(ticket, reply, await rt.store.list_messages(ticket.id))
    assert not err.value.permanent and "451" in err.value.reason
    assert await run_jobs_once(rt) == ["ready"]  # the deliver job goes back to the queue
    job = (await rt.store.list_jobs(kind="deliver"))[0]
    assert job.status == "ready" and "451" in (job.last_error or "")


async def test_permanent_smtp_failure_marks_the_message_failed_with_the_reason(make_rt,
                                                                               smtp_server: SmtpServer) -> None:
    rt = await make_rt([account("atencion", "x", smtp=smtp_server)])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    smtp_server.fail_next("550 5.1.1 <persona1@example.com>: Recipient address rejected: User unknown")
    assert await run_jobs_once(rt) == ["dead"]
    stored = await rt.store.get_message(reply.id)
    assert stored.delivery_status == DeliveryStatus.FAILED
    assert "550" in stored.delivery_error and "User unknown" in stored.delivery_error


async def test_data_refused_with_5xx_is_permanent(make_rt, smtp_server: SmtpServer) -> None:
    rt = await make_rt([account("atencion", "x", smtp=smtp_server)])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    smtp_server.fail_next_data("554 5.7.1 Message rejected as spam")
    with pytest.raises(SendError) as err:
        await rt.channels["email"].send(ticket, reply, await rt.store.list_messages(ticket.id))
    assert err.value.permanent and "spam" in err.value.reason


async def test_unreachable_smtp_server_is_temporary(make_rt) -> None:
    from tests.support.dovecot import free_port

    rt = await make_rt([account("atencion", "x", smtp_host="127.0.0.1", smtp_port=free_port())])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    with pytest.raises(SendError) as err:
        await rt.channels["email"].send(ticket, reply, await rt.store.list_messages(ticket.id))
    assert not err.value.permanent
    health = await rt.store.get_doc("channel_health", "email:atencion/smtp")
    assert health["status"] == "error"


async def test_sent_mail_is_appended_to_the_sent_folder(make_rt, smtp_server: SmtpServer, dovecot: Dovecot,
                                                        mailbox: str) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot, smtp_server, sent_folder="Sent")])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    assert await run_jobs_once(rt) == ["done"]
    client = dovecot.imap(mailbox)
    try:
        client.select_folder("Sent")
        uids = client.search(["ALL"])
        data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
    finally:
        client.logout()
    [item] = data.values()
    sent = email.message_from_bytes(item[b"BODY[]"], policy=email.policy.default)
    assert sent["Message-ID"] == f"<{reply.id}@inbox.example.gub.uy>" and b"\\Seen" in item[b"FLAGS"]


async def test_auto_acknowledgement_for_a_new_ticket_only(make_rt, smtp_server: SmtpServer) -> None:
    from tests.email.conftest import FIXTURES

    rt = await make_rt([account("atencion", "x", smtp=smtp_server, auto_acknowledge=True)])
    ticket = await citizen_ticket(rt, mail(1, subject="Consulta jubilación"))
    await citizen_ticket(rt, mail(2, sender="persona1@example.com", headers={"In-Reply-To": "<mail-1@example.com>"}))
    await citizen_ticket(rt, (FIXTURES / "es05_fuera_de_oficina.eml").read_bytes())  # auto-reply: no ack
    await citizen_ticket(rt, (FIXTURES / "es15_loop_mensaje_propio.eml").read_bytes())  # our own mail: no ack
    await citizen_ticket(rt, (FIXTURES / "flanker__from-encoding.eml").read_bytes())  # mailing list: no ack
    assert await run_jobs_once(rt, ["email_ack", "deliver"]) == ["done", "done"]
    [ack] = smtp_server.messages
    assert ack.recipients == ["persona1@example.com"]
    assert ack.mail["Subject"] == f"Re: Consulta jubilación [#{ticket.number}]"
    assert ack.mail["Auto-Submitted"] == "auto-replied"
    assert f"número {ticket.number}" in ack.mail.get_body(("plain",)).get_content()
    stored = [m for m in await rt.store.list_messages(ticket.id) if m.direction == Direction.OUT]
    assert stored[0].meta["kind"] == "auto_ack"
    assert (await rt.store.get_ticket(ticket.id)).first_response_at is None  # a robot is not a first response
    # the same job again sends nothing more
    await rt.store.enqueue(__import__("inbox.store.base", fromlist=["JobSpec"]).JobSpec(
        "email_ack", {"ticket_id": ticket.id, "account": "atencion"}))
    await run_jobs_once(rt)
    assert len(smtp_server.messages) == 1
