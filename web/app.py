"""The aiohttp application: health, the read-only JSON API, and whatever plugins add (agent UI, webhooks)."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from inbox.domain import Message, Ticket, TicketFilter
from inbox.store.base import StoreError
from web.keys import RUNTIME
from workers.runtime import Runtime

__all__ = ["RUNTIME", "create_app"]


def ticket_json(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "number": t.number,
        "status": t.status,
        "channel": t.channel,
        "contact_id": t.contact_id,
        "subject": t.subject,
        "tags": {k: v.to_dict() for k, v in t.tags.items()},
        "tramite": t.tags["tramite"].value if "tramite" in t.tags else None,
        "agency": t.tags["agency"].value if "agency" in t.tags else None,
        "assignee": t.assignee,
        "queue": t.queue,
        "priority": t.priority,
        "messages": t.message_count,
        "created_at": t.created_at.isoformat(),
        "first_response_at": t.first_response_at.isoformat() if t.first_response_at else None,
        "resolved_at": t.resolved_at.isoformat() if t.resolved_at else None,
        "last_activity_at": t.last_activity_at.isoformat(),
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction,
        "channel": m.channel,
        "external_id": m.external_id,
        "author": {"kind": m.author.kind, "value": m.author.value, "name": m.author.display_name} if m.author else None,
        "author_user": m.author_user,
        "subject": m.subject,
        "text": m.text,
        "attachments": [a.to_dict() for a in m.attachments],
        "sent_at": m.sent_at.isoformat() if m.sent_at else None,
        "received_at": m.received_at.isoformat(),
        "delivery_status": m.delivery_status,
        "delivery_error": m.delivery_error,
        "flags": m.flags,
    }


def _check_token(request: web.Request) -> None:
    token = request.app[RUNTIME].settings.web.api_token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or not given or not hmac.compare_digest(token.encode(), given.encode()):
        raise web.HTTPUnauthorized(text='{"error": "a valid API token is required"}', content_type="application/json",
                                   headers={"WWW-Authenticate": "Bearer"})


async def healthz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    await rt.store.count_tickets(TicketFilter(status=["new"]))
    return web.json_response({"status": "ok"})


async def api_tickets(request: web.Request) -> web.Response:
    _check_token(request)
    rt = request.app[RUNTIME]
    q = request.query
    flt = TicketFilter(
        status=q.getall("status") if "status" in q else None,
        channel=q.get("channel"),
        queue=q.get("queue"),
        assignee=q.get("assignee"),
        tramite=q.get("tramite"),
        agency=q.get("agency"),
        text=q.get("q"),
    )
    try:
        limit = max(1, min(200, int(q.get("limit", "50"))))
        page = await rt.store.list_tickets(flt, sort=q.get("sort", "last_activity"), cursor=q.get("cursor"),
                                           limit=limit)
    except (StoreError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f'{{"error": "{exc}"}}', content_type="application/json") from exc
    return web.json_response({"items": [ticket_json(t) for t in page.items], "next_cursor": page.next_cursor})


async def api_ticket(request: web.Request) -> web.Response:
    _check_token(request)
    rt = request.app[RUNTIME]
    try:
        number = int(request.match_info["number"])
    except ValueError:
        raise web.HTTPNotFound() from None
    ticket = await rt.store.get_ticket_by_number(number)
    if ticket is None:
        raise web.HTTPNotFound(text='{"error": "no such ticket"}', content_type="application/json")
    messages = await rt.store.list_messages(ticket.id)
    return web.json_response({**ticket_json(ticket), "thread": [message_json(m) for m in messages]})


def create_app(rt: Runtime) -> web.Application:
    """The whole web app: health, the token API, the agents' UI (sessions, CSRF, templates) and plugins' routes.

    Middlewares, outermost first: HTML error pages, authentication (default deny + CSRF), template context."""
    from web import auth, live, security, templating, views
    from web.login import setup_login

    cfg = rt.settings.web
    app = web.Application(client_max_size=cfg.max_upload_mb * 1024 * 1024 + 65536)
    app[RUNTIME] = rt
    app.middlewares.append(security.error_pages)
    auth.setup_auth(app, auth.load_secret_key(cfg.secret_key, rt.data_dir), cfg.secure_cookies,
                    cfg.login_attempts_per_minute)
    templating.setup_templates(app)
    app.on_response_prepare.append(security.make_security_headers(cfg.secure_cookies))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/tickets", api_tickets)
    app.router.add_get("/api/tickets/{number}", api_ticket)
    app.router.add_static("/static/", templating.STATIC, append_version=False)
    setup_login(app)
    live.setup_live(app, rt)
    views.setup_views(app, rt)
    for setup in rt.web_setups:
        setup(app, rt)
    return app
