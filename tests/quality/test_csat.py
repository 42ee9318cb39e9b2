"""Satisfaction survey round trip: a resolved ticket → a survey mail with a signed link (through the email adapter's
sender to a real SMTP server, aiosmtpd) → the public survey page → the answer recorded on the ticket."""

from __future__ import annotations

import re
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from inbox.domain import TicketStatus
from inbox.store.base import TicketChanges
from tests.conftest import make_settings
from tests.quality.conftest import drain, ingest
from tests.support.browser import free_port
from tests.support.smtp import SmtpServer
from web.app import create_app
from workers.outbox import queue_reply
from workers.quality import csat, engine
from workers.runtime import close_runtime, open_runtime

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK_RE = re.compile(r"(http://127\.0\.0\.1:\d+)(/encuesta/[A-Za-z0-9_.\-]+)")


@pytest.fixture
async def smtp():
    server = await SmtpServer.start()
    yield server
    await server.stop()


async def test_survey_round_trip_by_email(tmp_path, smtp: SmtpServer) -> None:
    port = free_port()
    account = {"name": "atencion", "address": "atencion@example.gub.uy", "imap_host": "127.0.0.1",
               "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_starttls": False, "smtp_user": "-"}
    rt = await open_runtime(make_settings(tmp_path / "data", **{
        "email.accounts": [account], "csat.delay_s": 0, "web.base_url": f"http://127.0.0.1:{port}"}))
    try:
        t = await ingest(rt, "ana@example.com", account="atencion", subject="Pasaporte vencido")
        await queue_reply(rt, t, "Puede renovarlo en línea.", "agente@gub.uy")
        await rt.store.update_ticket(t.id, TicketChanges(status=TicketStatus.RESOLVED), "agente@gub.uy")
        await engine.tick(rt)  # sees the resolution and schedules the survey
        done = await drain(rt)
        assert done.get("csat_send:done") == 1 and done.get("deliver:done") == 2, done
        mails = await smtp.wait_for(2)
        survey = mails[1].mail
        assert mails[1].recipients == ["ana@example.com"]
        assert survey["In-Reply-To"]  # threaded with the conversation
        body = survey.get_body(("plain",)).get_content()
        match = LINK_RE.search(body)
        assert match, body
        t = await rt.store.get_ticket(t.id)
        assert t.meta["csat_sent_at"]
        msgs = await rt.store.list_messages(t.id)
        assert msgs[-1].meta["kind"] == "csat_survey" and msgs[-1].delivery_status == "sent"
        # another tick or a retried job never sends it twice
        await engine.tick(rt)
        await rt.store.enqueue(csat.send_job_spec(t.id))
        await drain(rt)
        assert len(smtp.messages) == 2

        app = create_app(rt)
        async with TestClient(TestServer(app, port=port)) as client:
            path = match.group(2)
            page = await client.get(path)
            html = await page.text()
            assert page.status == 200 and f"#{t.number}" in html and 'name="puntaje"' in html
            token = CSRF_RE.search(html).group(1)
            bad = await client.post(path, data={"csrf_token": token, "puntaje": "9"})
            assert bad.status == 400
            ok = await client.post(path, data={"csrf_token": token, "puntaje": "4",
                                               "comentario": "Muy clara la respuesta"})
            assert ok.status == 200 and "Gracias" in await ok.text()
            # tampered or expired links are refused
            tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
            assert (await client.get(tampered)).status == 404
            expired = csat.sign_token(csat.secret_key(rt), t.id, int(time.time()) - 10)
            assert (await client.get(f"/encuesta/{expired}")).status == 410
            assert (await client.get("/encuesta/not-a-token")).status == 404

        answer = await rt.store.get_doc("csat", t.id)
        assert answer["rating"] == 4 and answer["comment"] == "Muy clara la respuesta"
        assert answer["channel"] == "email" and answer["number"] == t.number
        t = await rt.store.get_ticket(t.id)
        assert t.meta["csat"]["rating"] == 4
        events = await rt.store.list_events(ticket_id=t.id, kinds=[csat.EV_SENT, csat.EV_ANSWERED])
        assert [e.kind for e in events] == [csat.EV_SENT, csat.EV_ANSWERED]
        assert events[1].data == {"rating": 4, "comment": True, "changed": False}
        # the survey is not a response: the first-response time is the agent's reply
        assert t.first_response_at == msgs[1].received_at
    finally:
        await close_runtime(rt)


async def test_no_survey_without_a_reply_or_after_reopening(rt) -> None:
    t = await ingest(rt, "ana@example.com")
    await rt.store.update_ticket(t.id, TicketChanges(status=TicketStatus.RESOLVED), "agente@gub.uy")
    assert await csat.send_survey(rt, t.id) == "skipped:no_reply"
    u = await ingest(rt, "beto@example.com")
    await queue_reply(rt, u, "Respuesta", "agente@gub.uy")
    await rt.store.update_ticket(u.id, TicketChanges(status=TicketStatus.RESOLVED), "agente@gub.uy")
    await rt.store.update_ticket(u.id, TicketChanges(status=TicketStatus.OPEN), "agente@gub.uy")
    assert await csat.send_survey(rt, u.id) == "skipped:reopened"
    x = await ingest(rt, "999", channel="x", name="@beto")
    await queue_reply(rt, x, "Respuesta", "agente@gub.uy")
    await rt.store.update_ticket(x.id, TicketChanges(status=TicketStatus.RESOLVED), "agente@gub.uy")
    assert await csat.send_survey(rt, x.id) == "sent"  # a short message with the link on X
    survey = (await rt.store.list_messages(x.id))[-1]
    assert survey.channel == "x" and "/encuesta/" in survey.text and len(survey.text) < 280
    phone = await ingest(rt, "099123456", channel="phone", kind="phone")
    await queue_reply(rt, phone, "Respuesta", "agente@gub.uy")
    await rt.store.update_ticket(phone.id, TicketChanges(status=TicketStatus.RESOLVED), "agente@gub.uy")
    assert await csat.send_survey(rt, phone.id) == "skipped:channel"


def test_tokens_are_signed_and_expire() -> None:
    secret = b"k" * 32
    token = csat.sign_token(secret, "t_abc", int(time.time()) + 60)
    assert csat.verify_token(secret, token) == "t_abc"
    with pytest.raises(csat.InvalidLink):
        csat.verify_token(b"other", token)
    with pytest.raises(csat.InvalidLink):
        csat.verify_token(secret, token.replace("t_abc", "t_abd"))
    with pytest.raises(csat.InvalidLink) as exc:
        csat.verify_token(secret, token, now=time.time() + 120)
    assert exc.value.expired
