"""The ticket page and its actions, the contact panel (merge/undo), phone/PAC logs, the public contact form and the
live stream (events and presence)."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
from aiohttp.test_utils import TestClient

from inbox.domain import Tag, TicketFilter
from inbox.store.base import TicketChanges
from tests.web.conftest import CSRF_RE, Recorder, csrf_of, ingest, sign_in
from web import contact_form
from workers.jobs import run_one, worker_name
from workers.runtime import Runtime


async def post_form(client: TestClient, page: str, action: str, data: dict, **kw) -> aiohttp.ClientResponse:
    token = await csrf_of(client, page)
    return await client.post(action, data={**data, "csrf_token": token}, allow_redirects=False, **kw)


async def run_jobs_once(rt: Runtime) -> None:
    worker = worker_name("test")
    while (job := await rt.store.claim(worker, ["deliver"])) is not None:
        await run_one(rt, job, worker)


async def test_reply_is_queued_then_delivered_through_the_ticket_channel(client: TestClient, app_rt: Runtime) -> None:
    n = await ingest(app_rt, "r1", subject="Pasaporte", text="¿Cuánto cuesta el pasaporte?")
    await sign_in(client, "ana@example.uy")
    page = f"/tickets/{n}"
    html = await (await client.get(page)).text()
    assert "se envía por: Correo" in html
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', html).group(1)
    r = await post_form(client, page, f"/tickets/{n}/reply",
                        {"text": "Hola Juan, el costo es...", "request_id": request_id, "seen_messages": "1"})
    assert r.status == 303
    # a double submit of the same form is one reply
    r = await post_form(client, page, f"/tickets/{n}/reply",
                        {"text": "Hola Juan, el costo es...", "request_id": request_id, "seen_messages": "1"})
    html = await (await client.get(page)).text()
    assert "En cola" in html and html.count("Hola Juan, el costo es") == 1
    ticket = await app_rt.store.get_ticket_by_number(n)
    assert ticket.assignee == "ana@example.uy" and ticket.status == "open"
    await run_jobs_once(app_rt)
    recorder: Recorder = app_rt.channels["email"]  # type: ignore[assignment]
    assert len(recorder.sent) == 1 and recorder.sent[0][1].text == "Hola Juan, el costo es..."
    thread = await (await client.get(f"/tickets/{n}/thread")).text()
    assert 'data-delivery="sent"' in thread and "Enviado" in thread


async def test_failed_delivery_shows_the_reason_and_channel_warning(client: TestClient, app_rt: Runtime) -> None:
    from inbox.channels import SendError

    class Failing(Recorder):
        async def send(self, ticket, message, thread):  # type: ignore[no-untyped-def]
            raise SendError("(#10) fuera de la ventana de 24 horas", permanent=True)

    app_rt.channels["messenger"] = Failing("messenger", warning="La ventana de 24 horas de Messenger se cerró.")
    n = await ingest(app_rt, "f1", channel="messenger", sender="psid-1", subject=None, text="hola")
    await sign_in(client, "ana@example.uy")
    html = await (await client.get(f"/tickets/{n}")).text()
    assert "La ventana de 24 horas de Messenger se cerró." in html
    r = await post_form(client, f"/tickets/{n}", f"/tickets/{n}/reply", {"text": "Respuesta", "seen_messages": "1"})
    assert r.status == 303
    await run_jobs_once(app_rt)
    thread = await (await client.get(f"/tickets/{n}/thread")).text()
    assert 'data-delivery="failed"' in thread and "fuera de la ventana de 24 horas" in thread


async def test_a_second_reply_needs_confirmation(client: TestClient, app_rt: Runtime) -> None:
    from workers.outbox import queue_reply

    n = await ingest(app_rt, "c1")
    await sign_in(client, "ana@example.uy")
    html = await (await client.get(f"/tickets/{n}")).text()
    seen = re.search(r'name="seen_messages" value="(\d+)"', html).group(1)
    ticket = await app_rt.store.get_ticket_by_number(n)
    await queue_reply(app_rt, ticket, "Respuesta de Beto", "beto@example.uy", request_id="beto-1")
    r = await post_form(client, f"/tickets/{n}", f"/tickets/{n}/reply", {"text": "Mi respuesta", "seen_messages": seen})
    assert r.status == 409
    body = await r.text()
    assert "Beto Suárez respondió este ticket" in body and "Mi respuesta</textarea>" in body
    r = await post_form(client, f"/tickets/{n}", f"/tickets/{n}/reply",
                        {"text": "Mi respuesta", "seen_messages": seen, "confirm_duplicate": "1"})
    assert r.status == 303


async def test_note_update_assign_and_log_call(client: TestClient, app_rt: Runtime) -> None:
    n = await ingest(app_rt, "u1")
    await sign_in(client, "ana@example.uy")
    page = f"/tickets/{n}"
    assert (await post_form(client, page, f"/tickets/{n}/note", {"text": "Llamar mañana"})).status == 303
    assert (await post_form(client, page, f"/tickets/{n}/update",
                            {"status": "pending", "priority": "high", "assignee": "beto@example.uy",
                             "queue": "Ministerio del Interior"})).status == 303
    t = await app_rt.store.get_ticket_by_number(n)
    assert (t.status, t.priority, t.assignee, t.queue) == ("pending", "high", "beto@example.uy",
                                                           "Ministerio del Interior")
    assert (await post_form(client, page, f"/tickets/{n}/update", {"assignee": "nadie@x.uy"})).status == 400
    assert (await post_form(client, page, f"/tickets/{n}/assign-me", {})).status == 303
    assert (await app_rt.store.get_ticket_by_number(n)).assignee == "ana@example.uy"
    assert (await post_form(client, page, f"/tickets/{n}/log",
                            {"channel": "pac", "text": "Vino al PAC de 18 de Julio"})).status == 303
    msgs = await app_rt.store.list_messages(t.id)
    assert [m.direction for m in msgs] == ["in", "note", "in"]
    assert msgs[1].author_user == "ana@example.uy" and msgs[2].channel == "pac"
    html = await (await client.get(page)).text()
    assert "Nota interna" in html and "Atención presencial" in html and "Llamar mañana" in html


async def test_correcting_the_tramite_writes_an_agent_tag_and_a_label(client: TestClient, app_rt: Runtime) -> None:
    n = await ingest(app_rt, "t1", subject="Cédula por internet", text="Quiero sacar número para la cédula")
    t = await app_rt.store.get_ticket_by_number(n)
    await app_rt.store.update_ticket(t.id, TicketChanges(tags={"tramite": Tag(
        "4532", "model", confidence=0.41, model_version="m1", label="Recepción de Peticiones",
        why=["numero", "cedula"])}), "system:triage")

    class FakeClassifier:
        def predict(self, text: str, subject: str | None = None, k: int = 3) -> dict:
            return {"tramite": [{"key": "628", "name": "Solicitud de Número para Cédula", "p": 0.62},
                                {"key": "4532", "name": "Recepción de Peticiones", "p": 0.41}],
                    "agency": [], "terms": ["cedula", "numero"], "model_version": "m1"}

    app_rt.services["classifier"] = FakeClassifier()
    await sign_in(client, "ana@example.uy")
    html = await (await client.get(f"/tickets/{n}")).text()
    assert "modelo: 41 %" in html and "<mark>cedula</mark>" in html
    assert "Solicitud de Número para Cédula" in html and "62 %" in html
    assert "Respuesta sugerida" not in html  # not confident enough
    r = await post_form(client, f"/tickets/{n}", f"/tickets/{n}/tags", {"tramite": "628"})
    assert r.status == 303
    t = await app_rt.store.get_ticket_by_number(n)
    assert t.tags["tramite"].value == "628" and t.tags["tramite"].source == "agent"
    assert t.queue == "Ministerio del Interior"
    label = await app_rt.store.get_doc("labels", t.id)
    assert label["tramite"] == "628" and label["by"] == "ana@example.uy" and "cédula" in label["text"]
    assert label["agency"] and label["number"] == n
    html = await (await client.get(f"/tickets/{n}")).text()
    assert "confirmado por un agente" in html
    assert "Requisitos" in html and "Respuesta sugerida" in html and "Insertar" in html
    # "none fits" is a label too
    r = await post_form(client, f"/tickets/{n}", f"/tickets/{n}/tags", {"none": "1"})
    assert r.status == 303
    assert (await app_rt.store.get_doc("labels", t.id))["tramite"] is None
    assert (await post_form(client, f"/tickets/{n}", f"/tickets/{n}/tags", {"tramite": "no-existe"})).status == 400


async def test_contact_panel_merge_and_undo(client: TestClient, app_rt: Runtime) -> None:
    a = await ingest(app_rt, "m1", subject="Por correo", sender="laura@example.com", name="Laura Díaz")
    b = await ingest(app_rt, "m2", subject="Por X", channel="x", sender="998877", name="Laura D")
    ta, tb = await app_rt.store.get_ticket_by_number(a), await app_rt.store.get_ticket_by_number(b)
    await sign_in(client, "ana@example.uy")
    html = await (await client.get(f"/contacts/{ta.contact_id}?merge_q=Laura+D")).text()
    assert f'name="other" value="{tb.contact_id}"' in html
    r = await post_form(client, f"/tickets/{a}", "/contacts/merge",
                        {"keep": ta.contact_id, "other": tb.contact_id, "back": f"/tickets/{a}"})
    assert r.status == 303
    location = r.headers["Location"]
    assert location.startswith(f"/tickets/{a}?merged=")
    html = await (await client.get(location)).text()
    assert f'href="/tickets/{b}"' in html and "Deshacer la fusión" in html and "2 tickets de esta persona" in html
    merge_id = re.search(r'name="merge_id" value="([0-9a-f]+)"', html).group(1)
    r = await post_form(client, f"/tickets/{a}", "/contacts/unmerge", {"merge_id": merge_id, "back": location})
    assert r.status == 303 and "merged=" not in r.headers["Location"]
    assert (await app_rt.store.get_ticket_by_number(b)).contact_id == tb.contact_id
    html = await (await client.get(f"/tickets/{a}")).text()
    assert f'href="/tickets/{b}"' not in html
    r = await post_form(client, f"/tickets/{a}", "/contacts/merge", {"keep": ta.contact_id, "other": ta.contact_id})
    assert r.status == 400


async def test_log_a_phone_call_as_a_new_ticket(client: TestClient, app_rt: Runtime) -> None:
    await sign_in(client, "ana@example.uy")
    r = await post_form(client, "/log-contact", "/log-contact",
                        {"channel": "phone", "name": "Rosa", "phone": "099 123 456", "ci": "1.234.567-2",
                         "subject": "Consulta telefónica", "text": "Pregunta por la jubilación"})
    assert r.status == 303
    n = int(re.search(r"/tickets/(\d+)", r.headers["Location"]).group(1))
    t = await app_rt.store.get_ticket_by_number(n)
    assert t.channel == "phone"
    contact = await app_rt.store.get_contact(t.contact_id)
    assert {(i.kind, i.value) for i in contact.identities} == {("phone", "099123456"), ("ci", "12345672")}
    r = await post_form(client, "/log-contact", "/log-contact", {"channel": "phone", "text": "sin datos"})
    assert r.status == 400 and "al menos un teléfono" in await r.text()


async def test_public_contact_form(client: TestClient, app_rt: Runtime) -> None:
    assert contact_form.valid_ci("1.234.567-2") and not contact_form.valid_ci("12345678")
    data = aiohttp.FormData()
    html = await (await client.get("/contacto")).text()
    for k, v in {"csrf_token": CSRF_RE.search(html).group(1), "name": "Carla Méndez", "email": "carla@example.com",
                 "ci": "12345672", "topic": "consulta", "message": "¿Cómo renuevo la libreta de conducir?",
                 "request_id": re.search(r'name="request_id" value="([0-9a-f]+)"', html).group(1)}.items():
        data.add_field(k, v)
    data.add_field("attachments", b"%PDF-1.4 test", filename="constancia.pdf", content_type="application/pdf")
    r = await client.post("/contacto", data=data)
    assert r.status == 200
    body = await r.text()
    n = int(re.search(r'id="ticket-number">#(\d+)<', body).group(1))
    t = await app_rt.store.get_ticket_by_number(n)
    assert t.channel == "web" and t.subject.startswith("Consulta sobre un trámite: ")
    msgs = await app_rt.store.list_messages(t.id)
    assert msgs[0].attachments[0].filename == "constancia.pdf" and msgs[0].attachments[0].sha256
    contact = await app_rt.store.get_contact(t.contact_id)
    assert {(i.kind, i.value) for i in contact.identities} == {("email", "carla@example.com"), ("ci", "12345672")}

    async def submit(**fields: str) -> aiohttp.ClientResponse:
        page = await (await client.get("/contacto")).text()
        form = {"csrf_token": CSRF_RE.search(page).group(1), "name": "Bot", "email": "bot@example.com",
                "topic": "otro", "message": "spam", **fields}
        return await client.post("/contacto", data=form)

    before = await app_rt.store.count_tickets(TicketFilter())
    r = await submit(website="http://spam.example")  # honeypot: acknowledged, nothing stored
    assert r.status == 200 and "ticket-number" not in await r.text()
    r = await submit(email="no-es-un-correo", ci="123")
    assert r.status == 400 and "correo electrónico válido" in await r.text() and "cédula no es válida" in await r.text()
    assert await app_rt.store.count_tickets(TicketFilter()) == before
    r = await client.post("/contacto", data={"name": "x", "email": "x@example.com", "topic": "otro", "message": "m"})
    assert r.status == 403  # no CSRF token


async def test_contact_form_rate_limit(client: TestClient) -> None:
    limiter = client.app[contact_form.LIMITER]
    for _ in range(limiter.limit):
        limiter.hit("127.0.0.1")
    html = await (await client.get("/contacto")).text()
    r = await client.post("/contacto", data={"csrf_token": CSRF_RE.search(html).group(1), "name": "x",
                                             "email": "x@example.com", "topic": "otro", "message": "m"})
    assert r.status == 429 and "demasiados envíos" in await r.text()


async def test_live_stream_events_and_presence(client: TestClient, app_rt: Runtime) -> None:
    n = await ingest(app_rt, "l1")
    await sign_in(client, "ana@example.uy")

    async def wait_for(resp: aiohttp.ClientResponse, pred, timeout: float = 5.0) -> dict:  # type: ignore[no-untyped-def]
        async def loop() -> dict:
            async for line in resp.content:
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    if pred(event):
                        return event
            raise AssertionError("stream ended")

        return await asyncio.wait_for(loop(), timeout)

    inbox_stream = await client.get("/live", headers={"Accept": "text/event-stream"})
    assert inbox_stream.headers["Content-Type"].startswith("text/event-stream")
    ticket_stream = await client.get(f"/live?ticket={n}")
    assert (await wait_for(inbox_stream, lambda e: True))["type"] == "hello"
    ticket_id = (await app_rt.store.get_ticket_by_number(n)).id
    presence = await wait_for(ticket_stream, lambda e: e["type"] == "presence")
    assert presence == {"type": "presence", "ticket_id": ticket_id,
                        "viewers": [{"email": "ana@example.uy", "name": "Ana Pérez", "typing": False}]}
    n2 = await ingest(app_rt, "l2", subject="Nuevo mientras miro")
    await wait_for(inbox_stream, lambda e: e.get("kind") == "ticket.created" and e["number"] == n2)
    token = CSRF_RE.search(await (await client.get(f"/tickets/{n}")).text()).group(1)
    r = await client.post(f"/tickets/{n}/typing", data={"typing": "1"}, headers={"X-CSRF-Token": token})
    assert r.status == 200 and (await r.json())["viewers"][0]["typing"] is True
    await wait_for(ticket_stream, lambda e: e["type"] == "presence" and e["viewers"][0]["typing"])
    r = await client.post(f"/tickets/{n}/typing", data={"typing": "1"})
    assert r.status == 403  # no CSRF header
    doc = await app_rt.store.get_doc("presence", "ana@example.uy")
    assert doc["viewing"] == str(n) and doc["typing"] == str(n) and doc["online"] is True
    inbox_stream.close()
    ticket_stream.close()


async def test_live_stream_of_a_bad_or_unknown_ticket_number(client: TestClient) -> None:
    await sign_in(client, "ana@example.uy")
    assert (await client.get("/live?ticket=abc")).status == 400
    assert (await client.get("/live?ticket=999999")).status == 404
    assert (await client.get("/tickets/999999")).status == 404
