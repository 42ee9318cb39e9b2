"""Handlers of the service-quality pages (see web/quality/__init__.py for the list)."""

from __future__ import annotations

import csv
import hmac
import io
import json
import re
from datetime import UTC
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from inbox.domain import Event, TicketFilter
from inbox.store.base import NotFound
from web.auth import current_user, public, require_role
from web.keys import RUNTIME
from web.quality import STATIC
from web.quality.charts import render_chart
from web.security import DOWNLOAD_CSP
from web.templating import CHANNEL_LABELS, render
from workers.quality import csat, metrics, retention, stats

PERIODS = (7, 30, 90, 365)
AUDIT_PAGE = 100
AUDIT_WINDOW = 2000
AUDIT_MAX_SCAN = 200_000
RATING_LABELS = {1: "Muy insatisfecho", 2: "Insatisfecho", 3: "Ni satisfecho ni insatisfecho", 4: "Satisfecho",
                 5: "Muy satisfecho"}
TIMER_LABELS = {"first_response": "primera respuesta", "next_response": "siguiente respuesta",
                "resolution": "resolución"}
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


# -- helpers -------------------------------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value  # never a formula when opened in a spreadsheet
    return value


def csv_response(filename: str, columns: list[str], rows: list[list[Any]]) -> web.Response:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return web.Response(
        text="\ufeff" + buf.getvalue(), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Content-Security-Policy": DOWNLOAD_CSP},
    )


def _rt(request: web.Request) -> Any:
    return request.app[RUNTIME]


def _head() -> str:
    return "/calidad/quality.css?v=" + _css_version()


_css_cache: dict[str, str] = {}


def _css_version() -> str:
    if "v" not in _css_cache:
        import hashlib

        _css_cache["v"] = hashlib.sha256((STATIC / "quality.css").read_bytes()).hexdigest()[:10]
    return _css_cache["v"]


@public
async def quality_css(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "quality.css", headers={"Cache-Control": "public, max-age=86400",
                                                             "Content-Type": "text/css; charset=utf-8"})


# -- /transparencia ------------------------------------------------------------------------------------------------
def _month_series(rows: list[stats.TransparencyRow], months: list[str], attr: str) -> list[dict[str, Any]]:
    keys = sorted({r.key for r in rows})
    by = {(r.month, r.key): r for r in rows}
    series = []
    for k in keys:
        values = [getattr(by[(m, k)], attr) if (m, k) in by else None for m in months]
        if any(v is not None for v in values):
            series.append({"name": CHANNEL_LABELS.get(k, k), "values": values})
    return series


def _month_label(month: str) -> str:
    names = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "setiembre", "octubre",
             "noviembre", "diciembre"]
    y, m = month.split("-")
    return f"{names[int(m) - 1]} de {y}"


@public
async def transparencia(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    if not rt.settings.transparency.enabled:
        raise web.HTTPNotFound()
    report = await stats.transparency(rt)
    months = report.months
    with_data = sorted({r.month for r in report.rows})
    month = request.query.get("mes", "")
    if not _MONTH.match(month) or month not in months:
        month = with_data[-1] if with_data else months[-1]
    channel_rows = report.select("channel")
    agency_rows = [r for r in report.select("agency") if r.month == month]
    charts = {
        "csat": render_chart(
            {"type": "line", "categories": months, "series": _month_series(channel_rows, months, "csat_avg"),
             "unit": "1 a 5", "max": 5},
            "chart-csat", "Satisfacción promedio por canal y mes",
            "Promedio de las respuestas a la encuesta (1 a 5) de los tickets creados cada mes, por canal. "
            "Los datos también están en la tabla y en el CSV."),
        "first_response": render_chart(
            {"type": "line", "categories": months,
             "series": _month_series(channel_rows, months, "first_response_p50_h"), "unit": "horas"},
            "chart-first-response", "Tiempo de primera respuesta (mediana) por canal y mes",
            "Mediana, en horas hábiles, del tiempo hasta la primera respuesta de los tickets creados cada mes, "
            "por canal."),
        "agency": render_chart(
            {"type": "hbar", "categories": [r.key for r in agency_rows if r.csat_avg is not None],
             "series": [{"name": "Satisfacción promedio",
                         "values": [r.csat_avg for r in agency_rows if r.csat_avg is not None]}], "max": 5},
            "chart-agency", f"Satisfacción promedio por organismo, {_month_label(month)}",
            "Promedio de las respuestas a la encuesta por organismo en el mes elegido (solo organismos con "
            "suficientes respuestas)."),
    }
    ctx = {
        "head_css": _head(),
        "report": report,
        "months": months,
        "month": month,
        "month_label": _month_label(month),
        "month_labels": {m: _month_label(m) for m in months},
        "totals": [r for r in report.select("total") if r.month == month],
        "channel_rows": [r for r in channel_rows if r.month == month],
        "agency_rows": agency_rows,
        "charts": charts,
        "min_count": report.min_count,
    }
    return render(request, "quality/transparencia.html", ctx)


@public
async def transparencia_csv(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    if not rt.settings.transparency.enabled:
        raise web.HTTPNotFound()
    report = await stats.transparency(rt)
    return csv_response("transparencia.csv", stats.CSV_COLUMNS, stats.transparency_csv_rows(report.rows))


# -- /supervision --------------------------------------------------------------------------------------------------
def _days(request: web.Request) -> int:
    try:
        days = int(request.query.get("dias", "30"))
    except ValueError:
        days = 30
    return days if days in PERIODS else 30


@require_role("supervisor")
async def supervision(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    days = _days(request)
    figures = await stats.dashboard(rt, days)
    charts = {f.id: render_chart(f.chart, f"fig-{f.id}", f.title, f.description) for f in figures}
    alerts = sorted((d for _, d in await rt.store.list_docs("notifications", limit=100_000)
                     if d.get("kind") == "sla.breached"), key=lambda d: d.get("at", ""), reverse=True)[:20]
    return render(request, "quality/supervision.html", {
        "head_css": _head(), "figures": figures, "charts": charts, "days": days, "periods": PERIODS,
        "alerts": alerts, "timer_labels": TIMER_LABELS,
    })


@require_role("supervisor")
async def supervision_csv(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    days = _days(request)
    fid = request.match_info["figure"]
    for f in await stats.dashboard(rt, days):
        if f.id == fid:
            return csv_response(f"{fid}-{days}d.csv", f.columns, f.rows)
    raise web.HTTPNotFound()


# -- /admin/auditoria ----------------------------------------------------------------------------------------------
async def max_seq(store: Any) -> int:
    """The newest event's seq, by a binary search over ``list_events`` (no store method needed)."""
    if not await store.list_events(after_seq=0, limit=1):
        return 0
    lo, hi = 0, 1  # an event exists after lo
    while await store.list_events(after_seq=hi, limit=1):
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # an event exists after lo, none after hi
        mid = (lo + hi) // 2
        if await store.list_events(after_seq=mid, limit=1):
            lo = mid
        else:
            hi = mid
    return hi


def _is_person(e: Event, actor: str) -> bool:
    if e.actor.startswith("system:"):
        return False
    return not actor or actor in e.actor.lower()


async def audit_events(store: Any, before: int | None, actor: str, kind: str, limit: int) -> tuple[list[Event], int]:
    """People's events (actor not ``system:...``), newest first, with seq < ``before``; returns (events, next)."""
    before = before if before is not None else await max_seq(store) + 1
    out: list[Event] = []
    scanned = 0
    while before > 1 and len(out) < limit and scanned < AUDIT_MAX_SCAN:
        start = max(0, before - 1 - AUDIT_WINDOW)
        evs = await store.list_events(after_seq=start, limit=AUDIT_WINDOW, kinds=[kind] if kind else None)
        page = [e for e in evs if e.seq < before and _is_person(e, actor)]
        scanned += AUDIT_WINDOW
        for e in reversed(page):
            out.append(e)
            if len(out) >= limit:
                return out, e.seq
        before = start + 1
    return out, (before if before > 1 and scanned >= AUDIT_MAX_SCAN else 0)


def _audit_filters(request: web.Request) -> tuple[int | None, str, str]:
    q = request.query
    try:
        before = int(q["antes"]) if q.get("antes") else None
    except ValueError:
        before = None
    return before, q.get("actor", "").strip().lower()[:200], q.get("tipo", "").strip()[:100]


def _summary(e: Event) -> str:
    data = {k: v for k, v in e.data.items() if k not in ("why",)}
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


@require_role("admin")
async def auditoria(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    before, actor, kind = _audit_filters(request)
    events, nxt = await audit_events(rt.store, before, actor, kind, AUDIT_PAGE)
    rows = [{"seq": e.seq, "at": e.at, "actor": e.actor, "kind": e.kind, "ticket_id": e.ticket_id,
             "number": e.data.get("number"), "summary": _summary(e)} for e in events]
    return render(request, "quality/auditoria.html", {
        "head_css": _head(), "rows": rows, "next": nxt, "actor": actor, "kind": kind,
    })


@require_role("admin")
async def auditoria_csv(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    before, actor, kind = _audit_filters(request)
    events, _ = await audit_events(rt.store, before, actor, kind, 10_000)
    rows = [[e.seq, e.at.astimezone(UTC).isoformat(), e.actor, e.kind, e.ticket_id,
             json.dumps(e.data, ensure_ascii=False, default=str)] for e in events]
    return csv_response("auditoria.csv", ["seq", "fecha_utc", "actor", "evento", "ticket_id", "datos"], rows)


# -- /admin/datos-personales ---------------------------------------------------------------------------------------
@require_role("admin")
async def datos(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    q = request.query.get("q", "").strip()[:200]
    found = []
    if q:
        for c in await rt.store.search_contacts(q, limit=50):
            n = await rt.store.count_tickets(TicketFilter(contact_id=c.id))
            found.append({"contact": c, "tickets": n})
    return render(request, "quality/datos.html", {
        "head_css": _head(), "q": q, "found": found, "erased": request.query.get("borrado"),
        "erased_tickets": request.query.get("tickets"),
    })


@require_role("admin")
async def datos_export(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    cid = request.match_info["contact_id"]
    try:
        data = await retention.export_contact(rt, cid)
    except NotFound:
        raise web.HTTPNotFound() from None
    user = current_user(request) or {}
    await rt.store.append_event("contact.exported", None, user.get("email", "?"), {"contact_id": cid})
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="datos-{cid}.json"',
                 "Content-Security-Policy": DOWNLOAD_CSP})


@require_role("admin")
async def datos_erase(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    cid = request.match_info["contact_id"]
    form = await request.post()
    if form.get("confirmar") != "BORRAR":
        raise web.HTTPBadRequest(text="Escriba BORRAR para confirmar.")
    user = current_user(request) or {}
    try:
        result = await retention.erase_contact(rt, cid, user.get("email", "?"))
    except NotFound:
        raise web.HTTPNotFound() from None
    raise web.HTTPSeeOther(f"/admin/datos-personales?borrado={cid}&tickets={result['tickets']}")


# -- /encuesta -----------------------------------------------------------------------------------------------------
async def _survey_ticket(request: web.Request) -> Any:
    rt = _rt(request)
    try:
        ticket_id = csat.verify_token(csat.secret_key(rt), request.match_info["token"])
    except csat.InvalidLink as exc:
        return None, (410 if exc.expired else 404)
    ticket = await rt.store.get_ticket(ticket_id)
    if ticket is None or ticket.meta.get("anonymized_at"):
        return None, 404
    return ticket, 200


def _survey_error(request: web.Request, status: int) -> web.StreamResponse:
    message = ("El enlace de la encuesta venció. ¡Gracias de todos modos!" if status == 410
               else "El enlace de la encuesta no es válido.")
    return render(request, "quality/encuesta_error.html", {"head_css": _head(), "message": message}, status=status)


@public
async def encuesta(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    ticket, status = await _survey_ticket(request)
    if ticket is None:
        return _survey_error(request, status)
    previous = await rt.store.get_doc(csat.COLLECTION, ticket.id)
    error = None
    if request.method == "POST":
        form = await request.post()
        try:
            rating = int(str(form.get("puntaje", "")))
            if not 1 <= rating <= 5:
                raise ValueError
        except ValueError:
            error = "Elija una calificación del 1 al 5."
        else:
            comment = str(form.get("comentario", ""))[: csat.MAX_COMMENT]
            await csat.record_answer(rt, ticket.id, rating, comment)
            return render(request, "quality/encuesta_gracias.html", {"head_css": _head(), "number": ticket.number})
    ctx = {"head_css": _head(), "number": ticket.number, "labels": RATING_LABELS, "error": error,
           "rating": (previous or {}).get("rating"), "comment": (previous or {}).get("comment", ""),
           "answered": previous is not None}
    return render(request, "quality/encuesta.html", ctx, status=400 if error else 200)


# -- /metrics ------------------------------------------------------------------------------------------------------
@public
async def metrics_view(request: web.Request) -> web.StreamResponse:
    rt = _rt(request)
    s = rt.settings.metrics
    if not s.enabled:
        raise web.HTTPNotFound()
    if s.token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), s.token.encode()):
            raise web.HTTPUnauthorized(text="a valid metrics token is required", headers={"WWW-Authenticate": "Bearer"})
    body = metrics.render(await metrics.snapshot(rt))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/calidad/quality.css", quality_css)
    r.add_get("/transparencia", transparencia)
    r.add_get("/transparencia.csv", transparencia_csv)
    r.add_get("/supervision", supervision)
    r.add_get("/supervision/{figure:[a-z_]+}.csv", supervision_csv)
    r.add_get("/admin/auditoria", auditoria)
    r.add_get("/admin/auditoria.csv", auditoria_csv)
    r.add_get("/admin/datos-personales", datos)
    r.add_get("/admin/datos-personales/{contact_id}/export.json", datos_export)
    r.add_post("/admin/datos-personales/{contact_id}/borrar", datos_erase)
    r.add_route("GET", "/encuesta/{token}", encuesta)
    r.add_route("POST", "/encuesta/{token}", encuesta)
    r.add_get("/metrics", metrics_view)
