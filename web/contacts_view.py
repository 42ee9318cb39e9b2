"""Contacts (the 360° view): search, a contact's identities and every ticket, merge two contacts and undo; and the
agent's form to log a phone call or an in-person attention (PAC) for a citizen."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from inbox.domain import Identity, InboundMessage, TicketFilter, normalize_identity_value, stable_id
from inbox.store.base import NotFound, StoreError
from web import auth
from web.i18n import gettext as _
from web.keys import RUNTIME, UI
from web.templating import render
from web.views import agent_form, contact_label

IDENTITY_LABELS = {"email": "Correo", "x": "X", "facebook": "Facebook", "messenger": "Messenger",
                   "phone": "Teléfono", "ci": "Cédula"}


def local_back(value: Any, default: str) -> str:
    value = str(value or "")
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else default


@auth.require_role("agent")
async def contacts(request: web.Request) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:200]
    found = await request.app[RUNTIME].store.search_contacts(q, limit=50) if q else []
    return render(request, "contacts.html", {"q": q, "found": found, "contact_label": contact_label,
                                             "identity_labels": IDENTITY_LABELS})


@auth.require_role("agent")
async def contact_page(request: web.Request) -> web.StreamResponse:
    store = request.app[RUNTIME].store
    contact = await store.get_contact(request.match_info["contact_id"])
    if contact is None:
        raise web.HTTPNotFound()
    if contact.merged_into:
        raise web.HTTPSeeOther(f"/contacts/{contact.merged_into}")
    tickets = (await store.list_tickets(TicketFilter(contact_id=contact.id), limit=200)).items
    q = request.query.get("merge_q", "").strip()[:200]
    candidates = [c for c in await store.search_contacts(q, limit=20) if c.id != contact.id] if q else []
    merges = [(mid, rec) for mid, rec in await store.list_docs("merges")
              if rec.get("keep") == contact.id and not rec.get("undone")]
    merge_names = {}
    for _mid, rec in merges:
        other = await store.get_contact(rec["other"])
        merge_names[rec["other"]] = contact_label(other)
    return render(request, "contact.html", {
        "contact": contact, "contact_name": contact_label(contact), "tickets": tickets, "merge_q": q,
        "candidates": candidates, "contact_label": contact_label, "merges": merges, "merge_names": merge_names,
        "identity_labels": IDENTITY_LABELS, "done": request.query.get("done"),
    })


@auth.require_role("agent")
async def merge(request: web.Request) -> web.StreamResponse:
    store = request.app[RUNTIME].store
    user, form = await agent_form(request)
    keep, other = str(form.get("keep", "")), str(form.get("other", ""))
    try:
        merge_id = await store.merge_contacts(keep, other, user["email"])
    except NotFound:
        raise web.HTTPNotFound() from None
    except StoreError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    request.app[UI].forget_contact(keep, other)
    back = local_back(form.get("back"), f"/contacts/{keep}")
    sep = "&" if "?" in back else "?"
    raise web.HTTPSeeOther(f"{back}{sep}merged={merge_id}&done=merged")


@auth.require_role("agent")
async def unmerge(request: web.Request) -> web.StreamResponse:
    store = request.app[RUNTIME].store
    user, form = await agent_form(request)
    merge_id = str(form.get("merge_id", ""))
    if not re.fullmatch(r"[0-9a-f]{32}", merge_id):
        raise web.HTTPBadRequest()
    record = await store.get_doc("merges", merge_id)
    if record is None:
        raise web.HTTPNotFound()
    try:
        await store.unmerge_contacts(merge_id, user["email"])
    except StoreError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    request.app[UI].forget_contact(record["keep"], record["other"])
    back = local_back(form.get("back"), f"/contacts/{record['keep']}")
    back = re.sub(r"[?&](merged|done)=[^&#]*", "", back)
    sep = "&" if "?" in back else "?"
    raise web.HTTPSeeOther(f"{back}{sep}done=unmerged")


# -- logging a phone call or an in-person attention ----------------------------------------------------------------
@auth.require_role("agent")
async def log_contact_page(request: web.Request) -> web.StreamResponse:
    return render(request, "log_contact.html", {"errors": [], "form": {"channel": "phone"},
                                                "request_id": uuid.uuid4().hex})


@auth.require_role("agent")
async def log_contact_submit(request: web.Request) -> web.StreamResponse:
    """A new ticket from a phone call or a PAC attention, through the ingest pipeline (contact resolution included);
    a logged call on an existing ticket goes through the ticket page instead."""
    rt = request.app[RUNTIME]
    user, form = await agent_form(request)
    values = {k: str(form.get(k, "")).strip()[:2000] for k in
              ("channel", "name", "phone", "email", "ci", "subject", "text", "request_id")}
    values["text"] = str(form.get("text", "")).strip()[:20_000]
    errors = []
    if values["channel"] not in ("phone", "pac"):
        errors.append(_("Elija el canal: teléfono o atención presencial."))
    idents: list[Identity] = []
    for kind in ("phone", "email", "ci"):
        if values[kind]:
            value = normalize_identity_value(kind, values[kind])
            if not value or (kind == "email" and "@" not in value):
                errors.append(_("El dato de contacto «%(v)s» no es válido.", v=values[kind]))
            else:
                idents.append(Identity(kind, value, values["name"] or None))
    if not idents:
        errors.append(_("Indique al menos un teléfono, un correo o una cédula del ciudadano."))
    if not values["text"]:
        errors.append(_("Escriba un resumen de la consulta."))
    if errors:
        return render(request, "log_contact.html", {"errors": errors, "form": values,
                                                    "request_id": values["request_id"] or uuid.uuid4().hex},
                      status=400)
    request_id = values["request_id"] or uuid.uuid4().hex
    inbound = InboundMessage(
        channel=values["channel"], account=f"agent:{user['email']}", external_id=f"log-{request_id}",
        sender=idents[0], text=values["text"], subject=values["subject"] or None,
        raw=json.dumps({k: v for k, v in values.items()}, ensure_ascii=False).encode(),
        extra_identities=idents[1:], meta={"logged_by": user["email"]},
    )
    number = await ingest_number(rt, inbound)
    raise web.HTTPSeeOther(f"/tickets/{number}?done=logged")


async def ingest_number(rt: Any, inbound: InboundMessage) -> int:
    """Ingest and return the ticket number (a resubmitted form is a duplicate: its first ticket's number)."""
    outcome = await rt.pipeline.ingest(inbound)
    if outcome.ticket_number is not None:
        return int(outcome.ticket_number)
    message = await rt.store.get_message(stable_id("m", inbound.channel, inbound.account, inbound.external_id))
    ticket = await rt.store.get_ticket(message.ticket_id) if message else None
    if ticket is None:
        raise web.HTTPInternalServerError(text=outcome.error or "ingest failed")
    return ticket.number


def setup(app: web.Application) -> None:
    app.router.add_get("/contacts", contacts)
    app.router.add_get("/contacts/{contact_id}", contact_page)
    app.router.add_post("/contacts/merge", merge)
    app.router.add_post("/contacts/unmerge", unmerge)
    app.router.add_get("/log-contact", log_contact_page)
    app.router.add_post("/log-contact", log_contact_submit)

