"""The ticket page: the thread across channels, notes, status/priority/assignment, contact (360°), tags, catalogue,
the reply composer (through the outbox) and the agent's log of a phone call or an in-person attention."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from inbox.domain import (
    Direction,
    Message,
    Tag,
    Ticket,
    TicketFilter,
    TicketStatus,
    stable_id,
    utcnow,
)
from inbox.store.base import TicketChanges
from web import auth, services
from web.i18n import gettext as _
from web.keys import HUB, RUNTIME, UI
from web.security import DOWNLOAD_CSP
from web.templating import CHANNEL_LABELS, PRIORITY_LABELS, STATUS_LABELS, render
from web.views import UIState, agent_form, contact_label, ticket_from_path
from workers.outbox import queue_reply
from workers.runtime import Runtime

log = logging.getLogger(__name__)

CONFIDENT = 0.75  # a model tag at least this sure gets a suggested reply drafted from the catalogue
MAX_TEXT = 20_000
# Attachment types a browser may be handed as such (still as downloads); anything else is application/octet-stream.
SAFE_DOWNLOAD_TYPES = {
    "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv",
    "application/zip", "application/msword", "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text", "audio/mpeg", "audio/ogg", "video/mp4",
}
DONE_MESSAGES = {
    "reply": "Respuesta en cola para enviar.",
    "note": "Nota interna agregada.",
    "update": "Ticket actualizado.",
    "tags": "Trámite guardado. Gracias: esto mejora la clasificación automática.",
    "logged": "Registro agregado al ticket.",
    "unmerged": "Fusión deshecha.",
}


def form_request_id(form: Any) -> str:
    """The form's one-time id: a double-submitted form stores one message, not two."""
    return str(form.get("request_id", ""))[:64] or uuid.uuid4().hex


async def add_once(rt: Runtime, message: Message, actor: str) -> None:
    """Store an agent's note or logged call/PAC attention unless this request already stored it."""
    if await rt.store.get_message(message.id) is None:
        await rt.store.add_message(message, actor, [], [], first_response=False)


def back_to(ticket: Ticket, done: str | None = None, anchor: str = "", **extra: str) -> web.HTTPSeeOther:
    params = {"done": done} if done else {}
    params.update(extra)
    qs = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return web.HTTPSeeOther(f"/tickets/{ticket.number}" + (f"?{qs}" if qs else "") + (f"#{anchor}" if anchor else ""))


def reply_route(request: web.Request, ticket: Ticket, contact: Any, thread: list[Message]) -> dict[str, Any]:
    """Which channel a reply leaves through, and the channel's warning (e.g. Messenger's 24-hour window)."""
    rt = request.app[RUNTIME]
    channel: str | None = None
    to: str | None = None
    if ticket.channel in rt.channels:
        channel = ticket.channel
    elif "email" in rt.channels and contact is not None:
        to = next((i.value for i in contact.identities if i.kind == "email"), None)
        if to:
            channel = "email"
    warning = None
    if channel is None:
        warning = _("No hay un canal configurado para responder este ticket (%(channel)s). Puede agregar una nota "
                    "interna o registrar una llamada.", channel=_(CHANNEL_LABELS.get(ticket.channel, ticket.channel)))
    else:
        sender = rt.channels[channel]
        check = getattr(sender, "reply_warning", None)
        if check is not None:
            try:
                warning = check(ticket, thread)
            except Exception:  # noqa: BLE001 - a channel's check must not break the page
                log.warning("reply_warning of %s failed", channel, exc_info=True)
    return {"channel": channel, "to": to, "warning": warning}


def thread_items(thread: list[Message], users: dict[str, str]) -> list[dict[str, Any]]:
    items = []
    for m in thread:
        if m.direction == Direction.IN:
            who = (m.author.display_name or m.author.handle or m.author.value) if m.author else _("Ciudadano/a")
        else:
            who = users.get(m.author_user or "", m.author_user or _("Sistema"))
        kind = None
        if m.channel == "x":
            kind = {"mention": _("mención"), "dm": _("mensaje directo")}.get(m.meta.get("x_kind", ""))
        elif m.channel == "facebook":
            kind = _("comentario")
        items.append({"m": m, "who": who, "kind": kind,
                      "attachments": [(i, a) for i, a in enumerate(m.attachments)]})
    return items


async def ticket_context(request: web.Request, ticket: Ticket) -> dict[str, Any]:
    rt = request.app[RUNTIME]
    ui: UIState = request.app[UI]
    user = auth.current_user(request)
    store = rt.store
    contact = await store.get_contact(ticket.contact_id)
    thread = await store.list_messages(ticket.id)
    users = await ui.users()
    user_names = {u["email"]: u.get("name") or u["email"] for u in users}
    contact_tickets = (await store.list_tickets(TicketFilter(contact_id=ticket.contact_id), limit=100)).items
    tramite_tag = ticket.tags.get("tramite")
    agency_tag = ticket.tags.get("agency")
    info = services.lookup_tramite(rt, tramite_tag.value if tramite_tag else None)
    first_in = next((m for m in thread if m.direction == Direction.IN), None)
    prediction = None
    if first_in is not None:
        prediction = await services.predict(rt, ticket.subject, first_in.text or "")
    confident = bool(tramite_tag and tramite_tag.value and (
        tramite_tag.source == "agent" or (tramite_tag.confidence or 0) >= CONFIDENT))
    hub = request.app[HUB]
    done = request.query.get("done")
    merged = request.query.get("merged")
    merge_record = await store.get_doc("merges", merged) if merged and re.fullmatch(r"[0-9a-f]{32}", merged) else None
    return {
        "ticket": ticket, "contact": contact, "contact_name": contact_label(contact), "thread": thread_items(thread,
                                                                                                       user_names),
        "users": users, "user_names": user_names, "contact_tickets": contact_tickets,
        "tramite_tag": tramite_tag, "agency_tag": agency_tag, "tramite_info": info,
        "suggested_reply": suggested_reply(info, contact) if info and confident else None,
        "prediction": prediction, "tramite_options": services.tramite_options(rt),
        "route": reply_route(request, ticket, contact, thread),
        "viewers": [v for v in hub.presence_of(ticket.id) if v["email"] != (user or {}).get("email")],
        "statuses": STATUS_LABELS, "priorities": PRIORITY_LABELS,
        "done": _(DONE_MESSAGES[done]) if done in DONE_MESSAGES else None,
        "merge_record": merge_record if merge_record and not merge_record.get("undone") else None,
        "merge_id": merged, "request_id": uuid.uuid4().hex, "seen_messages": len(thread),
        "conflict": None, "draft": "",
    }


def suggested_reply(info: dict[str, str], contact: Any) -> str:
    name = contact.name if contact is not None and contact.name else ""
    lines = [_("Estimado/a %(name)s:", name=name).replace(" :", ":"), "",
             _("Gracias por comunicarse con Atención a la Ciudadanía. Sobre el trámite «%(tramite)s»:",
               tramite=info["name"])]
    if info.get("description"):
        lines += ["", info["description"]]
    if info.get("requirements"):
        lines += ["", _("Requisitos: %(req)s", req=info["requirements"])]
    if info.get("cost"):
        lines += ["", _("Costo: %(cost)s", cost=info["cost"])]
    if info.get("channels"):
        lines += ["", _("Dónde realizarlo: %(channels)s", channels=info["channels"])]
    if info.get("url"):
        lines += ["", _("Más información: %(url)s", url=info["url"])]
    lines += ["", _("Saludos cordiales,"), _("Atención a la Ciudadanía")]
    return "\n".join(lines)


async def ticket_form(request: web.Request) -> tuple[Runtime, dict[str, Any], Ticket, MultiDictProxy[Any]]:
    """What every form posted on a ticket's page starts from: the runtime, the signed-in agent, the ticket and the
    form's fields."""
    ticket = await ticket_from_path(request)
    user, form = await agent_form(request)
    return request.app[RUNTIME], user, ticket, form


@auth.require_role("agent")
async def ticket_page(request: web.Request) -> web.StreamResponse:
    ticket = await ticket_from_path(request)
    return render(request, "ticket.html", await ticket_context(request, ticket))


@auth.require_role("agent")
async def thread_fragment(request: web.Request) -> web.StreamResponse:
    ticket = await ticket_from_path(request)
    ui: UIState = request.app[UI]
    users = {u["email"]: u.get("name") or u["email"] for u in await ui.users()}
    thread = await request.app[RUNTIME].store.list_messages(ticket.id)
    return render(request, "_thread.html", {"ticket": ticket, "thread": thread_items(thread, users)})


@auth.require_role("agent")
async def reply(request: web.Request) -> web.StreamResponse:
    rt, user, ticket, form = await ticket_form(request)
    text = str(form.get("text", "")).strip()[:MAX_TEXT]
    request_id = form_request_id(form)
    if not text:
        raise back_to(ticket, anchor="composer")
    contact = await rt.store.get_contact(ticket.contact_id)
    thread = await rt.store.list_messages(ticket.id)
    route = reply_route(request, ticket, contact, thread)
    if route["channel"] is None:
        raise web.HTTPConflict(text=route["warning"] or "")
    # Two agents never answer twice without knowing: replies sent since this form was shown need a confirmation.
    try:
        seen = int(str(form.get("seen_messages", "0")))
    except ValueError:
        seen = 0
    newer = [m for m in thread[seen:] if m.direction == Direction.OUT and m.author_user != user["email"]
             and m.id != stable_id("m", "out", ticket.id, request_id)]
    if newer and form.get("confirm_duplicate") != "1":
        ctx = await ticket_context(request, ticket)
        names = sorted({ctx["user_names"].get(m.author_user or "", m.author_user or "") for m in newer})
        ctx.update(conflict=_("%(who)s respondió este ticket mientras usted escribía. Revise el hilo y confirme si "
                              "igual quiere enviar su respuesta.", who=", ".join(names)),
                   draft=text, request_id=request_id)
        return render(request, "ticket.html", ctx, status=409)
    meta = {"to": route["to"]} if route["to"] else None
    await queue_reply(rt, ticket, text, user["email"], channel=route["channel"], meta=meta, request_id=request_id)
    changes = TicketChanges()
    if ticket.assignee is None:
        changes.assignee = user["email"]
    if ticket.status == TicketStatus.NEW:
        changes.status = TicketStatus.OPEN
    wanted = str(form.get("then_status", ""))
    if wanted in STATUS_LABELS and wanted != ticket.status:
        changes.status = wanted
    if changes.assignee or changes.status:
        await rt.store.update_ticket(ticket.id, changes, user["email"])
    raise back_to(ticket, "reply", anchor="thread-end")


@auth.require_role("agent")
async def note(request: web.Request) -> web.StreamResponse:
    rt, user, ticket, form = await ticket_form(request)
    text = str(form.get("text", "")).strip()[:MAX_TEXT]
    if not text:
        raise back_to(ticket, anchor="composer")
    request_id = form_request_id(form)
    message = Message(
        id=stable_id("m", "note", ticket.id, request_id), ticket_id=ticket.id, direction=Direction.NOTE,
        channel=ticket.channel, account=ticket.meta.get("account", ""), external_id=None, author=None, text=text,
        author_user=user["email"],
    )
    await add_once(rt, message, user["email"])
    raise back_to(ticket, "note", anchor="thread-end")


@auth.require_role("agent")
async def update(request: web.Request) -> web.StreamResponse:
    """Status, priority, assignment and queue in one form (each field optional)."""
    rt, user, ticket, form = await ticket_form(request)
    ch = TicketChanges()
    status = str(form.get("status", ""))
    if status in STATUS_LABELS:
        ch.status = status
    priority = str(form.get("priority", ""))
    if priority in PRIORITY_LABELS:
        ch.priority = priority
    if "assignee" in form:
        assignee = str(form.get("assignee", ""))
        if assignee == "":
            ch.unassign = True
        elif assignee == "me":
            ch.assignee = user["email"]
        else:
            known = {u["email"] for u in await request.app[UI].users()}
            if assignee not in known:
                raise web.HTTPBadRequest(text="unknown user")
            if assignee != user["email"] and not auth.has_role(user, "agent"):
                raise web.HTTPForbidden()
            ch.assignee = assignee
    queue = form.get("queue")
    if isinstance(queue, str) and queue.strip():
        ch.queue = queue.strip()[:200]
    await rt.store.update_ticket(ticket.id, ch, user["email"])
    raise back_to(ticket, "update")


@auth.require_role("agent")
async def assign_me(request: web.Request) -> web.StreamResponse:
    rt, user, ticket, _form = await ticket_form(request)
    ch = TicketChanges(assignee=user["email"])
    if ticket.status == TicketStatus.NEW:
        ch.status = TicketStatus.OPEN
    await rt.store.update_ticket(ticket.id, ch, user["email"])
    raise back_to(ticket, "update")


@auth.require_role("agent")
async def set_tags(request: web.Request) -> web.StreamResponse:
    """The agent confirms or corrects the trámite (and agency): an agent tag, and a ``labels`` document the classifier
    learns from."""
    rt, user, ticket, form = await ticket_form(request)
    raw = str(form.get("tramite", "")).strip()[:300]
    none_fits = form.get("none") == "1"
    tags: dict[str, Tag] = {}
    info = None
    if none_fits:
        tags["tramite"] = Tag(None, "agent", label=_("Ningún trámite del catálogo"))
    elif raw:
        info = services.lookup_tramite(rt, raw)
        if info is None:  # typed the name rather than the key
            match = next((t for t in services.list_tramites(rt) if t["name"].lower() == raw.lower()), None)
            info = match
        if info is None:
            raise web.HTTPBadRequest(text=_("Trámite desconocido: %(t)s", t=raw))
        tags["tramite"] = Tag(info["key"], "agent", label=info["name"])
    agency = str(form.get("agency", "")).strip()[:300] or (info or {}).get("agency") or None
    if agency:
        tags["agency"] = Tag(agency, "agent", label=agency)
    elif none_fits:
        tags["agency"] = Tag(None, "agent")
    if not tags:
        raise back_to(ticket, anchor="tags")
    changes = TicketChanges(tags=tags)
    organismo = (info or {}).get("organismo")
    if organismo and not ticket.queue:
        changes.queue = organismo
    updated = await rt.store.update_ticket(ticket.id, changes, user["email"])
    thread = await rt.store.list_messages(ticket.id)
    first_in = next((m for m in thread if m.direction == Direction.IN), None)
    await rt.store.put_doc("labels", ticket.id, {
        "ticket_id": ticket.id, "number": ticket.number, "subject": ticket.subject,
        "text": first_in.text if first_in else "",
        "tramite": updated.tags["tramite"].value if "tramite" in updated.tags else None,
        "agency": updated.tags["agency"].value if "agency" in updated.tags else None,
        "by": user["email"], "at": utcnow().isoformat(),
    })
    raise back_to(ticket, "tags", anchor="tags")


@auth.require_role("agent")
async def log_on_ticket(request: web.Request) -> web.StreamResponse:
    """A phone call or an in-person attention (PAC) logged as a message of this ticket."""
    rt, user, ticket, form = await ticket_form(request)
    channel = str(form.get("channel", "phone"))
    if channel not in ("phone", "pac"):
        raise web.HTTPBadRequest()
    text = str(form.get("text", "")).strip()[:MAX_TEXT]
    if not text:
        raise back_to(ticket, anchor="log-form")
    request_id = form_request_id(form)
    contact = await rt.store.get_contact(ticket.contact_id)
    author = None
    if contact is not None and contact.identities:
        author = next((i for i in contact.identities if i.kind == "phone"), contact.identities[0])
    message = Message(
        id=stable_id("m", channel, ticket.id, request_id), ticket_id=ticket.id, direction=Direction.IN,
        channel=channel, account=f"agent:{user['email']}", external_id=f"log-{request_id}", author=author, text=text,
        subject=ticket.subject, author_user=user["email"], meta={"logged_by": user["email"]},
    )
    await add_once(rt, message, user["email"])
    raise back_to(ticket, "logged", anchor="thread-end")


@auth.require_role("agent")
async def attachment(request: web.Request) -> web.StreamResponse:
    """An attachment of one of this ticket's messages, always as a download with safe headers."""
    rt = request.app[RUNTIME]
    ticket = await ticket_from_path(request)
    message = await rt.store.get_message(request.match_info["message_id"])
    if message is None or message.ticket_id != ticket.id:
        raise web.HTTPNotFound()
    try:
        att = message.attachments[int(request.match_info["index"])]
    except (ValueError, IndexError):
        raise web.HTTPNotFound() from None
    if not att.sha256 or not rt.attachments.exists(att.sha256):
        raise web.HTTPNotFound()
    data = rt.attachments.get(att.sha256)
    ctype = (att.content_type or "").split(";")[0].strip().lower()
    if ctype not in SAFE_DOWNLOAD_TYPES:
        ctype = "application/octet-stream"
    filename = re.sub(r"[\x00-\x1f\x7f\"\\/]", "_", att.filename or "adjunto") or "adjunto"
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    return web.Response(body=data, headers={
        "Content-Type": ctype,
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_CSP,
        "Cache-Control": "private, no-store",
        "X-Download-Options": "noopen",
    })


def setup(app: web.Application) -> None:
    app.router.add_get("/tickets/{number:\\d+}", ticket_page)
    app.router.add_get("/tickets/{number:\\d+}/thread", thread_fragment)
    app.router.add_post("/tickets/{number:\\d+}/reply", reply)
    app.router.add_post("/tickets/{number:\\d+}/note", note)
    app.router.add_post("/tickets/{number:\\d+}/update", update)
    app.router.add_post("/tickets/{number:\\d+}/assign-me", assign_me)
    app.router.add_post("/tickets/{number:\\d+}/tags", set_tags)
    app.router.add_post("/tickets/{number:\\d+}/log", log_on_ticket)
    app.router.add_get("/tickets/{number:\\d+}/attachments/{message_id}/{index:\\d+}", attachment)

