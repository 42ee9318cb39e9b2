"""Security of the web app: default deny for anonymous users on every route, CSRF on every form, safe headers,
attachments only as downloads, hostile HTML sanitized on output."""

from __future__ import annotations

import email
import re
from pathlib import Path

from aiohttp.test_utils import TestClient

from inbox.domain import Identity, InboundAttachment, InboundMessage
from tests.web.conftest import CSRF_RE, csrf_of, ingest, sign_in
from workers.runtime import Runtime

FIXTURES = Path(__file__).parents[1] / "fixtures"
PUBLIC = {"/healthz", "/login", "/contacto"}
# Routes other packages deliberately mark @public (reviewed): anything new marked public fails this test until it is
# added here, so opening a page to anonymous users is always a visible decision.
REVIEWED_PUBLIC = {
    "/transparencia", "/transparencia.csv", "/calidad/quality.css",  # web.quality: public service-quality results
    "/encuesta/{token}",  # web.quality: satisfaction survey behind a signed token
    "/metrics",  # web.quality: Prometheus metrics
}


def concrete(path: str, number: int, contact_id: str) -> str:
    path = re.sub(r"\{number[^}]*\}", str(number), path)
    path = re.sub(r"\{contact_id[^}]*\}", contact_id, path)
    path = re.sub(r"\{index[^}]*\}", "0", path)
    return re.sub(r"\{[^}]+\}", "x", path)


async def routes_to_check(client: TestClient, app_rt: Runtime) -> list[tuple[str, str, str]]:
    number = await ingest(app_rt, "sec-1")
    ticket = await app_rt.store.get_ticket_by_number(number)
    assert ticket is not None
    out = []
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path is None or route.method == "HEAD":
            continue
        public = getattr(route.handler, "__inbox_public__", False)
        out.append((route.method, path, concrete(path, number, ticket.contact_id), public))
    return out


async def test_every_route_refuses_anonymous_users(client: TestClient, app_rt: Runtime) -> None:
    checked = 0
    for method, pattern, path, public in await routes_to_check(client, app_rt):
        if pattern.startswith("/static") or (pattern in PUBLIC and method == "GET"):
            continue
        if public and pattern not in PUBLIC:
            assert pattern in REVIEWED_PUBLIC, f"{pattern} is marked @public: review it and list it here"
            continue
        r = await client.request(method, path, allow_redirects=False, data={} if method == "POST" else None)
        body = await r.text()
        if pattern.startswith("/webhooks/"):  # the channel's signature / verify token stands in for a session
            assert r.status >= 400, (method, path, r.status)
        elif pattern.startswith("/api/"):
            assert r.status == 401, (method, path, r.status)
        elif pattern in PUBLIC:  # a public form posted without its CSRF token
            assert r.status == 403, (method, path, r.status)
        else:
            assert r.status in (303, 401, 403), (method, path, r.status, body[:200])
            if r.status == 303:
                assert r.headers["Location"].startswith("/login?next="), (method, path)
        checked += 1
    assert checked >= 20
    # JSON clients get 401 rather than a redirect
    r = await client.get("/inbox/counts", headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status == 401


async def test_public_routes_answer(client: TestClient) -> None:
    for path in ("/healthz", "/login", "/contacto", "/static/app.css"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 200, path


async def test_forms_without_csrf_are_refused(client: TestClient, app_rt: Runtime) -> None:
    await sign_in(client, "ana@example.uy")
    posts = [(m, p, c) for m, p, c, _public in await routes_to_check(client, app_rt)
             if m == "POST" and not p.startswith("/webhooks/")]
    assert len(posts) >= 10
    for _method, pattern, path in posts:
        r = await client.post(path, data={"text": "x", "status": "open"}, allow_redirects=False)
        assert r.status == 403, (pattern, r.status)
        r = await client.post(path, data={"text": "x", "csrf_token": "forged"}, allow_redirects=False)
        assert r.status == 403, (pattern, r.status)
    # a valid token from another origin is refused too
    number = await ingest(app_rt, "sec-2")
    token = await csrf_of(client, f"/tickets/{number}")
    r = await client.post(f"/tickets/{number}/note", data={"text": "x", "csrf_token": token},
                          headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert r.status == 403
    r = await client.post(f"/tickets/{number}/note", data={"text": "ok", "csrf_token": token}, allow_redirects=False)
    assert r.status == 303


async def test_security_headers(client: TestClient) -> None:
    r = await client.get("/login")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    html = await r.text()
    assert '<html lang="es-UY">' in html
    assert "<script>" not in html and " style=" not in html and " on" not in re.sub(r"\s(content|name)=", "", html)


async def test_login_open_redirect_is_refused(client: TestClient) -> None:
    token = await csrf_of(client, "/login")
    r = await client.post("/login", data={"email": "ana@example.uy", "password": "contraseña-segura-1",
                                          "csrf_token": token, "next": "//evil.example/x"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/inbox"


async def test_attachments_are_downloads_never_inline_html(client: TestClient, app_rt: Runtime) -> None:
    outcome = await app_rt.pipeline.ingest(InboundMessage(
        channel="email", account="test", external_id="att-1", sender=Identity("email", "a@example.com"),
        text="adjunto", raw=b"raw-att", subject="Adjuntos",
        attachments=[
            InboundAttachment("evil.html", "text/html", b"<script>window.__xss=1</script>", 31),
            InboundAttachment("logo.svg", "image/svg+xml", b"<svg onload='alert(1)'/>", 24),
            InboundAttachment("constancia.pdf", "application/pdf", b"%PDF-1.4 test", 13),
            InboundAttachment("informe \"final\".txt", "text/plain; charset=utf-8", b"hola", 4),
        ]))
    number = outcome.ticket_number
    await sign_in(client, "ana@example.uy")
    page = await (await client.get(f"/tickets/{number}")).text()
    links = re.findall(rf'href="(/tickets/{number}/attachments/[^"]+)"', page)
    assert len(links) == 4
    seen = {}
    for link in links:
        r = await client.get(link)
        assert r.status == 200
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Security-Policy"].startswith("sandbox")
        seen[link.rsplit("/", 1)[1]] = (r.headers["Content-Type"], r.headers["Content-Disposition"])
    assert seen["0"][0].startswith("application/octet-stream")  # never text/html
    assert seen["1"][0].startswith("application/octet-stream")  # never image/svg+xml
    assert seen["2"][0].startswith("application/pdf")
    assert '"' not in seen["3"][1].split("filename=")[1].split(";")[0].strip('"')
    # another ticket's message id cannot be used to reach the file
    other = await ingest(app_rt, "att-2")
    r = await client.get(links[0].replace(f"/tickets/{number}/", f"/tickets/{other}/"))
    assert r.status == 404


async def test_hostile_html_is_sanitized_on_output(client: TestClient, app_rt: Runtime) -> None:
    from adapters.email.parse import parse_message

    raw = (FIXTURES / "email" / "es02_outlook_html_xss_pixel.eml").read_bytes()
    outcome = await app_rt.pipeline.ingest(parse_message(raw, "test"))
    # and the same HTML as if an adapter had let it through unsanitized (defence in depth)
    hostile = email.message_from_bytes(raw).get_payload(decode=True).decode("utf-8")
    assert "onerror" in hostile and "javascript:" in hostile
    n2 = await ingest(app_rt, "raw-html", subject='"><script>window.__xss=1</script>', html=hostile,
                      text="<img src=x onerror=window.__xss=1>")
    await sign_in(client, "ana@example.uy")
    for number in (outcome.ticket_number, n2):
        html = await (await client.get(f"/tickets/{number}")).text()
        body = html.split('<main id="main"', 1)[1].split("</main>", 1)[0]
        assert "<script" not in body.lower()
        assert not re.search(r"<[^>]+\son\w+\s*=", body, re.IGNORECASE)
        assert "javascript:" not in body.lower()
        assert "<iframe" not in body.lower()
    inbox = await (await client.get("/inbox")).text()
    assert "<script>window.__xss" not in inbox and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in inbox


async def test_csrf_token_changes_with_the_session(client: TestClient) -> None:
    anon = await csrf_of(client, "/login")
    await sign_in(client, "ana@example.uy")
    page = await (await client.get("/inbox")).text()
    m = CSRF_RE.search(page)
    assert m and m.group(1) != anon
