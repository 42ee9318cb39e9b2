"""End to end over real servers: citizen mail (Dovecot, IDLE) → ticket → agent reply (outbox → aiosmtpd) → the
citizen's replies thread back, by In-Reply-To and by the [#N] tag alone."""

from __future__ import annotations

import asyncio

from inbox.domain import DeliveryStatus, Direction, TicketFilter
from tests.email.conftest import OUR_ADDRESS, account, mail, wait_until
from tests.email.test_send import run_jobs_once
from tests.support.dovecot import Dovecot
from tests.support.smtp import SmtpServer
from workers.outbox import queue_reply


def citizen_reply(n: int, to_mail, subject: str, extra_headers: dict[str, str]) -> bytes:
    return mail(n, sender="lucia@example.com", name="Lucía Fernández", subject=subject,
                body="Gracias, ¿y dónde lo presento?\n\nEl lun, 3 nov 2025 a las 10:02, Atención Ciudadana "
                     f"<{OUR_ADDRESS}> escribió:\n> {to_mail}\n", headers=extra_headers)


async def test_mail_reply_and_replies_thread_end_to_end(dovecot: Dovecot, mailbox: str, make_rt, run_worker,
                                                        smtp_server: SmtpServer) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot, smtp_server, poll_interval_s=60.0)])
    run_worker(rt)

    async def idle() -> bool:
        doc = await rt.store.get_doc("channel_health", "email:atencion")
        return bool(doc and "IDLE" in doc["detail"])

    await wait_until(idle)
    await asyncio.sleep(0.3)

    # 1. the citizen writes; IDLE turns it into a ticket within 2 s
    dovecot.lmtp_deliver(mailbox, mail(1, sender="lucia@example.com", name="Lucía Fernández",
                                       subject="Asignaciones familiares"))

    async def tickets(n: int) -> bool:
        return await rt.store.count_tickets(TicketFilter(channel="email")) == n

    assert await wait_until(lambda: tickets(1), timeout=5, every=0.02) < 2.0
    [ticket] = (await rt.store.list_tickets(TicketFilter(channel="email"))).items

    # 2. an agent answers; the outbox sends it with our Message-ID and the thread's headers
    reply = await queue_reply(rt, ticket, "Estimada Lucía: debe presentar la partida.", "agente@example.gub.uy",
                              request_id="e2e")
    assert await run_jobs_once(rt) == ["done"]
    [sent] = await smtp_server.wait_for(1)
    ours = sent.mail["Message-ID"]
    assert ours == f"<{reply.id}@inbox.example.gub.uy>"
    assert sent.mail["In-Reply-To"] == "<mail-1@example.com>"
    assert sent.mail["References"] == "<mail-1@example.com>"
    assert sent.mail["Subject"] == f"Re: Asignaciones familiares [#{ticket.number}]"
    assert sent.recipients == ["lucia@example.com"]
    assert (await rt.store.get_message(reply.id)).delivery_status == DeliveryStatus.SENT

    # 3. the citizen's client replies with In-Reply-To/References: same ticket
    dovecot.lmtp_deliver(mailbox, citizen_reply(2, "Estimada Lucía", sent.mail["Subject"],
                                                {"In-Reply-To": ours, "References": f"<mail-1@example.com> {ours}"}))

    async def count(n: int) -> bool:
        t = await rt.store.get_ticket(ticket.id)
        return t is not None and t.message_count == n

    await wait_until(lambda: count(3), timeout=5)

    # 4. a client that drops the headers but keeps "[#N]" in the subject: same ticket
    dovecot.lmtp_deliver(mailbox, citizen_reply(3, "x", f"RE: [#{ticket.number}] Asignaciones familiares", {}))
    await wait_until(lambda: count(4), timeout=5)
    assert await rt.store.count_tickets(TicketFilter(channel="email")) == 1
    messages = await rt.store.list_messages(ticket.id)
    assert [m.direction for m in messages] == [Direction.IN, Direction.OUT, Direction.IN, Direction.IN]
    assert [m.meta.get("thread_rule") for m in messages if m.direction == Direction.IN] == [
        "new", "references", "ticket_number"]
    assert messages[2].text == "Gracias, ¿y dónde lo presento?"  # the quoted history is in meta, not the text
    assert messages[2].meta["quoted_text"].startswith("El lun, 3 nov 2025")
