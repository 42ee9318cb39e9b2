"""The public contact form (``/contacto``): the web channel. Honeypot, per-IP rate limit, CSRF, attachments; each
submission is ingested as an ``InboundMessage`` on channel ``web`` and acknowledged with its ticket number."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

from aiohttp import web

from inbox.domain import Identity, InboundAttachment, InboundMessage
from web import auth
from web.contacts_view import ingest_number
from web.i18n import gettext as _
from web.keys import RUNTIME
from web.templating import render

TOPICS = {
    "consulta": "Consulta sobre un trámite",
    "reclamo": "Reclamo",
    "sugerencia": "Sugerencia",
    "felicitacion": "Felicitación",
    "acceso": "Acceso a la información pública",
    "otro": "Otro tema",
}
MAX_FILES = 5
ACCEPTED_TYPES = {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}
HONEYPOT = "website"
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
LIMITER = web.AppKey("contact_form_limiter", auth.RateLimiter)


def valid_ci(value: str) -> bool:
    """Uruguayan cédula de identidad: 7 or 8 digits, the last one a check digit (weights 2987634)."""
    digits = re.sub(r"\D", "", value)
    if not 7 <= len(digits) <= 8:
        return False
    digits = digits.zfill(8)
    total = sum(int(d) * w for d, w in zip(digits[:7], (2, 9, 8, 7, 6, 3, 4), strict=True))
    return (10 - total % 10) % 10 == int(digits[7])


def _context(values: dict[str, str], errors: dict[str, str], request: web.Request) -> dict:
    return {"values": values, "errors": errors, "topics": TOPICS, "max_mb": request.app[RUNTIME].settings.web
            .max_upload_mb, "max_files": MAX_FILES}


@auth.public
async def form_page(request: web.Request) -> web.StreamResponse:
    return render(request, "contacto.html", _context({"topic": "consulta", "request_id": uuid.uuid4().hex}, {},
                                                     request))


@auth.public
async def form_submit(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    limiter: auth.RateLimiter = request.app[LIMITER]
    ip_key = auth.client_ip(request)
    if limiter.blocked(ip_key):
        response = render(request, "contacto.html", {**_context({}, {}, request), "throttled": True}, status=429)
        response.headers["Retry-After"] = "3600"
        return response
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() if isinstance(form.get(k, ""), str) else ""
              for k in ("name", "email", "ci", "topic", "message", "request_id")}
    if form.get(HONEYPOT):  # a bot filled the hidden field: pretend success, store nothing
        limiter.hit(ip_key)
        return render(request, "contacto_ok.html", {"number": None})
    errors: dict[str, str] = {}
    if not values["name"] or len(values["name"]) > 200:
        errors["name"] = _("Escriba su nombre (hasta 200 caracteres).")
    if not _EMAIL.match(values["email"]) or len(values["email"]) > 254:
        errors["email"] = _("Escriba un correo electrónico válido, por ejemplo nombre@correo.com.uy.")
    if values["ci"] and not valid_ci(values["ci"]):
        errors["ci"] = _("La cédula no es válida: escriba los 7 u 8 números, con el dígito verificador.")
    if values["topic"] not in TOPICS:
        errors["topic"] = _("Elija un tema.")
    if not values["message"] or len(values["message"]) > 10_000:
        errors["message"] = _("Escriba su consulta (hasta 10.000 caracteres).")
    files: list[InboundAttachment] = []
    max_bytes = rt.settings.web.max_upload_mb * 1024 * 1024
    total = 0
    for item in form.getall("attachments", []):
        if not isinstance(item, web.FileField) or not item.filename:
            continue
        data = item.file.read(max_bytes + 1)
        total += len(data)
        ctype = (item.content_type or "application/octet-stream").split(";")[0].lower()
        if ctype not in ACCEPTED_TYPES:
            errors["attachments"] = _("Solo se aceptan archivos PDF, imágenes (PNG, JPEG, GIF, WebP) o texto.")
        elif len(data) > max_bytes or total > max_bytes:
            errors["attachments"] = _("Los archivos superan el máximo de %(mb)s MB.", mb=rt.settings.web.max_upload_mb)
        files.append(InboundAttachment(item.filename[:200], ctype, data, len(data)))
    if len(files) > MAX_FILES:
        errors["attachments"] = _("Puede adjuntar hasta %(n)s archivos.", n=MAX_FILES)
    if errors:
        return render(request, "contacto.html", _context(values, errors, request), status=400)
    limiter.hit(ip_key)
    request_id = re.sub(r"[^0-9a-f]", "", values["request_id"])[:32] or uuid.uuid4().hex
    topic = TOPICS[values["topic"]]
    first_line = values["message"].splitlines()[0][:80] if values["message"] else ""
    raw = json.dumps({
        "name": values["name"], "email": values["email"], "ci": values["ci"], "topic": values["topic"],
        "message": values["message"], "ip": ip_key, "user_agent": request.headers.get("User-Agent", "")[:300],
        "attachments": [{"filename": f.filename, "content_type": f.content_type, "size": f.size,
                         "sha256": hashlib.sha256(f.data or b"").hexdigest()} for f in files],
        "request_id": request_id,
    }, ensure_ascii=False).encode()
    inbound = InboundMessage(
        channel="web", account="contacto", external_id=request_id,
        sender=Identity("email", values["email"], values["name"]),
        text=values["message"], raw=raw, subject=f"{_(topic)}: {first_line}",
        attachments=files, meta={"topic": values["topic"]},
        extra_identities=[Identity("ci", values["ci"], values["name"])] if values["ci"] else [],
    )
    number = await ingest_number(rt, inbound)
    return render(request, "contacto_ok.html", {"number": number})


def setup(app: web.Application) -> None:
    rt = app[RUNTIME]
    app[LIMITER] = auth.RateLimiter(max(1, rt.settings.web.contact_form_per_hour), 3600.0)
    app.router.add_get("/contacto", form_page)
    app.router.add_post("/contacto", form_submit)
