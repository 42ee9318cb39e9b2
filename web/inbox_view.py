"""The inbox: views (mine, unassigned, each queue, channel, status, trámite), filters that combine, full-text
search, keyset pagination, counts per view, and the live refresh fragment."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from inbox.domain import Page, Ticket, TicketFilter
from inbox.store.base import StoreError, decode_cursor, encode_cursor
from web import auth, services
from web.i18n import gettext as _
from web.keys import RUNTIME, UI
from web.templating import CHANNEL_LABELS, PRIORITY_LABELS, STATUS_LABELS, local_time, render
from web.views import ACTIVE_STATUSES, UIState, contact_label

PAGE_SIZE = 50
SLA_SORT_CAP = 2000  # the SLA sort orders at most this many matching tickets (the store sorts by activity only)
SORTS = {"last_activity": "Última actividad", "created": "Fecha de creación", "sla": "Vencimiento del SLA"}
VIEWS = {"mine": "Mis tickets", "unassigned": "Sin asignar", "all": "Todos"}
PARAMS = ("view", "status", "channel", "queue", "tramite", "agency", "q", "sort")


def parse_query(request: web.Request, user: dict[str, Any]) -> tuple[TicketFilter, dict[str, Any]]:
    """The filter of the request's query string; every parameter combines with the others."""
    q = request.query
    params: dict[str, Any] = {}
    view = q.get("view", "all")
    if view not in VIEWS:
        view = "all"
    params["view"] = view
    flt = TicketFilter()
    if view == "mine":
        flt.assignee = user["email"]
    elif view == "unassigned":
        flt.unassigned = True
    statuses = [s for s in q.getall("status", []) if s in STATUS_LABELS or s == "any"]
    if "any" in statuses:
        params["status"] = ["any"]
    elif statuses:
        flt.status = statuses
        params["status"] = statuses
    else:
        flt.status = list(ACTIVE_STATUSES)
    channel = q.get("channel", "")
    if channel in CHANNEL_LABELS:
        flt.channel = params["channel"] = channel
    for name in ("queue", "tramite", "agency"):
        value = q.get(name, "").strip()[:300]
        if value:
            setattr(flt, name, value)
            params[name] = value
    text = q.get("q", "").strip()[:200]
    if text:
        flt.text = params["q"] = text
    sort = q.get("sort", "last_activity")
    params["sort"] = sort if sort in SORTS else "last_activity"
    return flt, params


def query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for key in (*PARAMS, "cursor"):
        value = merged.get(key)
        default = (key == "view" and value == "all") or (key == "sort" and value == "last_activity")
        if value in (None, "", []) or default:
            continue
        for v in value if isinstance(value, list) else [value]:
            pairs.append((key, str(v)))
    return urlencode(pairs)


def flt_key(flt: TicketFilter) -> tuple:
    return (tuple(flt.status or ()), flt.channel, flt.queue, flt.assignee, flt.unassigned, flt.tramite, flt.agency,
            flt.contact_id, flt.text)


async def sla_page(request: web.Request, flt: TicketFilter, cursor: str | None) -> Page:
    """Order by ``meta.sla_due_at`` (earliest first, tickets without one last) over the first SLA_SORT_CAP matches."""
    store = request.app[RUNTIME].store
    items: list[Ticket] = []
    page_cursor = None
    while len(items) < SLA_SORT_CAP:
        page = await store.list_tickets(flt, cursor=page_cursor, limit=min(500, SLA_SORT_CAP - len(items)))
        items.extend(page.items)
        page_cursor = page.next_cursor
        if page_cursor is None:
            break

    def key(t: Ticket) -> tuple[str, int]:
        return (str(t.meta.get("sla_due_at") or "9999"), t.number)

    items.sort(key=key)
    if cursor:
        after = tuple(decode_cursor(cursor))
        items = [t for t in items if key(t) > (str(after[0]), int(after[1]))]
    page_items = items[:PAGE_SIZE]
    nxt = encode_cursor(list(key(page_items[-1]))) if len(items) > PAGE_SIZE else None
    return Page(page_items, nxt)


async def load_rows(request: web.Request, flt: TicketFilter, params: dict[str, Any],
                    cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    rt = request.app[RUNTIME]
    ui: UIState = request.app[UI]
    try:
        if params["sort"] == "sla":
            page = await sla_page(request, flt, cursor)
        else:
            page = await rt.store.list_tickets(flt, sort=params["sort"], cursor=cursor, limit=PAGE_SIZE)
    except StoreError:
        raise web.HTTPBadRequest() from None
    # Display strings are prepared here rather than in the template: it halves the page's rendering time.
    channels = {k: _(v) for k, v in CHANNEL_LABELS.items()}
    statuses = {k: _(v) for k, v in STATUS_LABELS.items()}
    priorities = {k: _(v) for k, v in PRIORITY_LABELS.items()}
    no_subject, unassigned = _("(sin asunto)"), _("Sin asignar")
    rows = []
    for t in page.items:
        contact = await ui.contact(t.contact_id)
        tramite = t.tags.get("tramite")
        due = t.meta.get("sla_due_at")
        rows.append({
            "number": t.number, "id": t.id, "status": t.status, "priority": t.priority, "channel": t.channel,
            "subject": t.subject or no_subject, "contact": contact_label(contact),
            "channel_label": channels.get(t.channel, t.channel), "status_label": statuses.get(t.status, t.status),
            "priority_label": priorities.get(t.priority, t.priority) if t.priority in ("high", "urgent") else None,
            "tramite": (tramite.label or tramite.value) if tramite and tramite.value else "—",
            "assignee": t.assignee or unassigned, "at_iso": t.last_activity_at.isoformat(),
            "at": local_time(t.last_activity_at),
            "sla": _("Vence: %(at)s", at=local_time(due)) if due else None,
        })
    return rows, page.next_cursor


def sidebar_views(user: dict[str, Any], queues: list[str]) -> list[dict[str, Any]]:
    """The sidebar's views: (group, id, label, query params, filter)."""
    out: list[dict[str, Any]] = []

    def add(group: str, vid: str, label: str, params: dict[str, Any], flt: TicketFilter) -> None:
        out.append({"group": group, "id": vid, "label": label, "qs": query_string(params), "flt": flt})

    add("views", "mine", _("Mis tickets"), {"view": "mine"},
        TicketFilter(status=list(ACTIVE_STATUSES), assignee=user["email"]))
    add("views", "unassigned", _("Sin asignar"), {"view": "unassigned"},
        TicketFilter(status=list(ACTIVE_STATUSES), unassigned=True))
    add("views", "all", _("Todos los activos"), {}, TicketFilter(status=list(ACTIVE_STATUSES)))
    for queue in queues:
        add("queues", "queue:" + queue, queue, {"queue": queue},
            TicketFilter(status=list(ACTIVE_STATUSES), queue=queue))
    for ch, label in CHANNEL_LABELS.items():
        add("channels", "channel:" + ch, _(label), {"channel": ch},
            TicketFilter(status=list(ACTIVE_STATUSES), channel=ch))
    for st, label in STATUS_LABELS.items():
        add("statuses", "status:" + st, _(label), {"status": [st]}, TicketFilter(status=[st]))
    return out


async def known_queues(request: web.Request, user: dict[str, Any]) -> list[str]:
    ui: UIState = request.app[UI]
    if auth.has_role(user, "supervisor"):
        names = {q for u in await ui.users() for q in u.get("queues", [])}
    else:
        names = set(user.get("queues", []))
    return sorted(names, key=str.lower)


@auth.require_role("agent")
async def inbox(request: web.Request) -> web.StreamResponse:
    user = auth.current_user(request)
    assert user is not None
    flt, params = parse_query(request, user)
    cursor = request.query.get("cursor") or None
    rows, next_cursor = await load_rows(request, flt, params, cursor)
    queues = await known_queues(request, user)
    views = sidebar_views(user, queues)
    ui: UIState = request.app[UI]
    for v in views:  # counts already computed recently are shown at once; the page fetches the rest
        hit = ui.counts.get(flt_key(v["flt"]))
        v["count"] = hit[1] if hit else None
    current_qs = query_string(params)
    active_view = next((v["id"] for v in views if v["qs"] == current_qs), None)
    rt = request.app[RUNTIME]
    tramite = params.get("tramite")
    info = services.lookup_tramite(rt, tramite) if tramite else None
    title = _(VIEWS[params["view"]]) if params["view"] != "all" else _("Bandeja")
    return render(request, "inbox.html", {
        "rows": rows, "params": params, "views": views, "active_view": active_view, "queues": queues,
        "next_qs": query_string(params, cursor=next_cursor) if next_cursor else None,
        "first_qs": current_qs if cursor else None, "current_qs": current_qs, "is_first_page": not cursor,
        "tramite_options": services.tramite_options(rt), "tramite_name": info["name"] if info else tramite,
        "sorts": SORTS, "title": title, "channels": CHANNEL_LABELS, "statuses": STATUS_LABELS,
    })


@auth.require_role("agent")
async def inbox_rows(request: web.Request) -> web.StreamResponse:
    """The first page's rows as an HTML fragment (the live refresh)."""
    user = auth.current_user(request)
    assert user is not None
    flt, params = parse_query(request, user)
    rows, next_cursor = await load_rows(request, flt, params, None)
    return render(request, "_inbox_rows.html", {"rows": rows, "params": params})


@auth.require_role("agent")
async def inbox_counts(request: web.Request) -> web.StreamResponse:
    """Counts of every sidebar view and of the current filter (JSON, cached a few seconds)."""
    user = auth.current_user(request)
    assert user is not None
    store = request.app[RUNTIME].store
    ui: UIState = request.app[UI]
    flt, params = parse_query(request, user)
    out: dict[str, int | str] = {}
    cap = getattr(store, "SEARCH_COUNT_CAP", None)  # a store that stops counting search matches there
    for v in [*sidebar_views(user, await known_queues(request, user)), {"id": "current", "flt": flt}]:
        f: TicketFilter = v["flt"]
        n = await ui.count(flt_key(f), functools.partial(store.count_tickets, f))
        out[v["id"]] = f"{n:,}+".replace(",", ".") if f.text and cap and n >= cap else n
    return web.json_response(out)


def setup(app: web.Application) -> None:
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/inbox/rows", inbox_rows)
    app.router.add_get("/inbox/counts", inbox_counts)
