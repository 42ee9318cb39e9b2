"""The agents' inbox in real Chromium (Playwright, Debian's chromium; see shared/testing-notes.md)."""

from __future__ import annotations

import asyncio
import email as email_lib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from inbox.domain import Identity, InboundMessage, Tag, TicketFilter
from inbox.store.base import TicketChanges
from tests.support.browser import LiveServer, chromium, live_server, new_agent_page
from tests.web.conftest import ingest

pytestmark = pytest.mark.browser
FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(tmp_path / "data") as s:
        yield s


@pytest.fixture
async def chrome() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def test_login_then_a_new_ticket_appears_without_reload(server: LiveServer, chrome: Any) -> None:
    page = await new_agent_page(chrome, server, "ana@example.uy")
    assert (await page.locator("h1").first.inner_text()).startswith("Bandeja")
    await page.evaluate("window.__sameDocument = true")
    n = await ingest(server.rt, "live-1", subject="Consulta por jubilación", sender="nuevo@example.com")
    row = page.locator(f'#ticket-rows tr[data-number="{n}"]')
    await row.wait_for(state="visible", timeout=8000)
    assert "Consulta por jubilación" in await row.inner_text()
    assert await page.evaluate("window.__sameDocument") is True  # no reload happened
    await page.locator('[data-count="unassigned"]').filter(has_text=re.compile(r"\d")).wait_for()
    # keyboard alone: "/" search, j/k to move, Enter to open, r to reply, ? for help
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "q"
    await page.locator("#q").blur()
    await page.keyboard.press("j")
    assert await page.evaluate("document.activeElement.closest('tr').dataset.number") == str(n)
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(rf".*/tickets/{n}$"))
    await page.keyboard.press("r")
    assert await page.evaluate("document.activeElement.id") == "reply-text"
    await page.locator("#reply-text").blur()
    await page.keyboard.press("?")
    assert await page.locator("#shortcuts-help").is_visible()
    await page.keyboard.press("Escape")
    await page.keyboard.press("a")
    await page.wait_for_url(re.compile(r".*done=update.*"))
    assert (await server.rt.store.get_ticket_by_number(n)).assignee == "ana@example.uy"
    # wrong password stays on the login page with an error
    context = await chrome.new_context()
    other = await context.new_page()
    await other.goto(server.url("/login"))
    await other.fill("input[name=email]", "ana@example.uy")
    await other.fill("input[name=password]", "incorrecta")
    await other.click("button[type=submit]")
    await other.locator("#login-error").wait_for()
    assert "/login" in other.url


async def test_open_correct_tramite_reply_and_see_it_delivered(server: LiveServer, chrome: Any) -> None:
    n = await ingest(server.rt, "flow-1", subject="Número para cédula", text="¿Cómo saco número para la cédula?",
                     sender="vecina@example.com", name="Elena Vecina")
    t = await server.rt.store.get_ticket_by_number(n)
    await server.rt.store.update_ticket(t.id, TicketChanges(tags={"tramite": Tag(
        "4532", "model", confidence=0.35, model_version="m0", label="Recepción de Peticiones")}), "system:triage")
    page = await new_agent_page(chrome, server, "ana@example.uy")
    await page.click(f'#ticket-rows tr[data-number="{n}"] a')
    await page.wait_for_url(re.compile(rf".*/tickets/{n}$"))
    await page.fill("#tramite-input", "628")
    await page.click("#tag-save")
    await page.locator("#tags .badge.agent").wait_for()
    assert "Solicitud de Número para Cédula de Identidad por Internet" in await page.locator("#tags").inner_text()
    label = await server.rt.store.get_doc("labels", t.id)
    assert label and label["tramite"] == "628" and label["by"] == "ana@example.uy"
    # the catalogue panel: insert the requisites, then use the suggested reply (an agent-confirmed trámite)
    await page.locator("#catalog button.insert").first.click()
    assert await page.input_value("#reply-text") != ""
    await page.click('button[data-insert-from="suggested-reply"]')
    assert (await page.input_value("#reply-text")).startswith("Estimado/a Elena Vecina:")
    await page.fill("#reply-text", "Hola Elena: puede pedir el número en línea.")
    await page.click("#reply-form button[type=submit]")
    await page.wait_for_url(re.compile(r".*done=reply.*"))
    delivered = page.locator('#thread .delivery[data-delivery="sent"]')
    await delivered.wait_for(timeout=10_000)  # the live stream refreshes the thread when the job reports
    [sent] = await server.smtp.wait_for(1)
    assert sent.recipients == ["vecina@example.com"] and f"#{n}" in sent.mail["Subject"]
    assert "puede pedir el número en línea" in sent.mail.get_body(("plain",)).get_content()


async def test_second_agent_sees_presence_and_typing(server: LiveServer, chrome: Any) -> None:
    n = await ingest(server.rt, "pres-1", subject="Dos agentes")
    ana = await new_agent_page(chrome, server, "ana@example.uy")
    beto = await new_agent_page(chrome, server, "beto@example.uy")
    await ana.goto(server.url(f"/tickets/{n}"))
    await beto.goto(server.url(f"/tickets/{n}"))
    await beto.locator("#presence .viewer", has_text="Ana Pérez").wait_for(timeout=8000)
    await ana.locator("#presence .viewer", has_text="Beto Suárez").wait_for(timeout=8000)
    await ana.type("#reply-text", "Estoy respondiendo")
    await beto.locator("#presence .viewer.typing", has_text="Ana Pérez").wait_for(timeout=8000)
    await ana.close()
    await beto.locator("#presence .viewer", has_text="Ana Pérez").wait_for(state="detached", timeout=8000)


async def test_contact_merge_shows_both_tickets_and_undo(server: LiveServer, chrome: Any) -> None:
    a = await ingest(server.rt, "mg-1", subject="Consulta por correo", sender="raul@example.com", name="Raúl Pintos")
    b = await ingest(server.rt, "mg-2", subject="Consulta por X", channel="x", sender="55555", name="Raul P")
    ta = await server.rt.store.get_ticket_by_number(a)
    page = await new_agent_page(chrome, server, "ana@example.uy")
    await page.goto(server.url(f"/tickets/{a}"))
    await page.fill("#merge-q", "Raul P")
    await page.click("#contact-panel button[type=submit]")
    await page.wait_for_url(re.compile(rf".*/contacts/{ta.contact_id}\?merge_q=.*"))
    await page.click("#merge-candidates button")
    rows = page.locator("#contact-tickets tbody tr")
    await page.locator(f'#contact-tickets tr[data-number="{b}"]').wait_for()
    assert await rows.count() == 2
    await page.goto(server.url(f"/tickets/{a}"))
    panel = page.locator("#contact-panel")
    assert f"#{b}" in await panel.inner_text() and "2 tickets de esta persona" in await panel.inner_text()
    await page.goto(server.url(f"/contacts/{ta.contact_id}"))
    await page.click("text=Deshacer la fusión")
    await page.locator(".flash", has_text="Fusión deshecha").wait_for()
    assert await page.locator("#contact-tickets tbody tr").count() == 1


async def test_public_contact_form_creates_a_ticket(server: LiveServer, chrome: Any) -> None:
    context = await chrome.new_context(locale="es-UY")
    page = await context.new_page()
    await page.goto(server.url("/contacto"))
    await page.fill("#cf-name", "Lucía Fernández")
    await page.fill("#cf-email", "lucia@example.com")
    await page.fill("#cf-ci", "1.234.567-2")
    await page.select_option("#cf-topic", "reclamo")
    await page.fill("#cf-message", "No me llegó la respuesta de mi trámite de partida de nacimiento.")
    await page.set_input_files("#cf-files", files=[{"name": "nota.txt", "mimeType": "text/plain",
                                                    "buffer": b"detalle del reclamo"}])
    await page.click("button[type=submit]")
    number = int((await page.locator("#ticket-number").inner_text()).lstrip("#"))
    t = await server.rt.store.get_ticket_by_number(number)
    assert t is not None and t.channel == "web" and t.subject.startswith("Reclamo: ")
    # errors are announced next to their field and focus goes to the first one
    await page.goto(server.url("/contacto"))
    await page.fill("#cf-email", "no-es-correo")
    await page.click("button[type=submit]")
    await page.locator("#cf-name-error").wait_for()
    assert await page.evaluate("document.activeElement.id") == "cf-name"


XSS_MARKER_INIT = """
window.__xss = undefined;
window.__messages = [];
window.addEventListener('message', (e) => window.__messages.push(String(e.data)));
"""


def marker_variant(html: str) -> str:
    """The es02 payloads, rewritten to set window.__xss instead of alerting / exfiltrating."""
    html = re.sub(r"<script([^>]*)>.*?</script>", r"<script\1>window.__xss='script'</script>", html, flags=re.S)
    html = html.replace("alert('onload')", "window.__xss='onload'")
    html = re.sub(r'onerror="[^"]*"', "onerror=\"window.__xss='onerror'\"", html)
    html = html.replace("javascript:alert(document.domain)", "javascript:window.__xss='href'")
    return html.replace('onmouseover="', "onmouseover=\"window.__xss='hover';")


async def test_hostile_html_subjects_and_tweets_run_no_script(server: LiveServer, chrome: Any) -> None:
    from adapters.email.parse import parse_message

    rt = server.rt
    raw = (FIXTURES / "email" / "es02_outlook_html_xss_pixel.eml").read_bytes()
    n1 = (await rt.pipeline.ingest(parse_message(raw, "test"))).ticket_number
    hostile = marker_variant(email_lib.message_from_bytes(raw).get_payload(decode=True).decode())
    payload = "<img src=x onerror=\"window.__xss='subject'\"><script>window.__xss='subject'</script>"
    n2 = await ingest(rt, "xss-html", subject=payload, html=hostile, text=payload)  # as if an adapter let it through
    n3 = await ingest(rt, "xss-tweet", channel="x", sender="666", name="<svg onload=\"window.__xss='name'\">",
                      subject=None, text="@gubuy <script>window.__xss='tweet'</script> <b onmouseover=alert(1)>x</b>",
                      meta={"x_kind": "mention"})
    outcome = await rt.pipeline.ingest(InboundMessage(
        channel="messenger", account="test", external_id="xss-fb", sender=Identity("messenger", "psid-9", "</title>"
                                                                                 "<script>window.__xss=1</script>"),
        text="\"><iframe src=javascript:window.top.__xss='iframe'>", raw=b"x"))
    n4 = outcome.ticket_number
    external: list[str] = []
    dialogs: list[str] = []
    page = await new_agent_page(chrome, server, "ana@example.uy")
    await page.context.add_init_script(XSS_MARKER_INIT)
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(server.base_url) else None)
    for path in ["/inbox", "/inbox?status=any", *(f"/tickets/{n}" for n in (n1, n2, n3, n4))]:
        await page.goto(server.url(path))
        await page.wait_for_load_state("load")
        for link in await page.locator("#thread a").all():
            await link.hover()
        await page.mouse.move(5, 5)
        await page.wait_for_timeout(200)
        assert await page.evaluate("window.__xss") is None, path
        assert await page.evaluate("window.__messages") == [], path
    assert dialogs == [] and [u for u in external if not u.startswith("data:")] == []
    # the text is shown, as text
    await page.goto(server.url(f"/tickets/{n3}"))
    assert "<script>window.__xss='tweet'</script>" in await page.locator("#thread").inner_text()


def serious(results: Any) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


async def test_axe_finds_no_serious_violations(server: LiveServer, chrome: Any) -> None:
    from axe_playwright_python.async_playwright import Axe

    axe = Axe()
    n = await ingest(server.rt, "axe-1", subject="Pasaporte", text="¿Qué necesito para el pasaporte?",
                     html="<p>¿Qué necesito para el <b>pasaporte</b>?</p>")
    t = await server.rt.store.get_ticket_by_number(n)
    await server.rt.store.update_ticket(t.id, TicketChanges(tags={"tramite": Tag("628", "agent", label="Cédula")}),
                                        "t")
    context = await chrome.new_context(locale="es-UY")
    anon = await context.new_page()
    problems: dict[str, list[str]] = {}
    for path in ("/login", "/contacto"):
        await anon.goto(server.url(path))
        problems[path] = serious(await axe.run(anon))
    await anon.fill("#cf-email", "x")
    await anon.click("button[type=submit]")
    await anon.locator("#cf-name-error").wait_for()
    problems["/contacto (errors)"] = serious(await axe.run(anon))
    page = await new_agent_page(chrome, server, "ana@example.uy")
    for path in ("/inbox", f"/tickets/{n}", f"/contacts/{t.contact_id}", "/log-contact"):
        await page.goto(server.url(path))
        await page.wait_for_load_state("load")
        problems[path] = serious(await axe.run(page))
    assert all(not v for v in problems.values()), problems
    assert await server.rt.store.count_tickets(TicketFilter()) == 1
