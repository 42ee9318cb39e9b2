"""Figures for the public results page (/transparencia) and the supervisors' dashboard.

Both are computed by scanning the store (``list_tickets`` pages, ``csat`` documents, ``users``/``presence``): simple and
always consistent with the data, fine for a few hundred thousand tickets; see docs/quality.md for the scaling notes.
Times are business hours of the SLA calendar (``cal.business_seconds``) from creation to the first response or to the
resolution. Months and days are those of the calendar's time zone (America/Montevideo)."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from inbox.channels import CHANNEL_LABELS
from inbox.domain import Ticket, TicketFilter, TicketStatus, utcnow
from workers.quality.calendar import BusinessCalendar

if TYPE_CHECKING:
    from workers.runtime import Runtime

UNCLASSIFIED = "Sin clasificar"
OPEN_STATUSES = [TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING]


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default; ``statistics.quantiles(method="inclusive")``)."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def r1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def r2(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def month_key(value: datetime, cal: BusinessCalendar) -> str:
    return value.astimezone(cal.tz).strftime("%Y-%m")


def day_key(value: datetime, cal: BusinessCalendar) -> str:
    return value.astimezone(cal.tz).strftime("%Y-%m-%d")


def recent_months(now: datetime, n: int, cal: BusinessCalendar) -> list[str]:
    local = now.astimezone(cal.tz)
    y, m = local.year, local.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return list(reversed(out))


def agency_of(t: Ticket, non_agency_queues: frozenset[str] = frozenset()) -> str:
    """The agency a ticket counts for: its queue (the agency's top-level body), else its agency tag."""
    if t.queue and t.queue not in non_agency_queues:
        return t.queue
    tag = t.tags.get("agency")
    return tag.value if tag is not None and tag.value else UNCLASSIFIED


def non_agency_queues(rt: Runtime) -> frozenset[str]:
    s = rt.settings.assignment
    return frozenset([*s.channel_queues.values(), *([s.default_queue] if s.default_queue else [])])


def first_response_h(t: Ticket, cal: BusinessCalendar) -> float | None:
    if t.first_response_at is None:
        return None
    return cal.business_seconds(t.created_at, t.first_response_at) / 3600.0


def resolution_h(t: Ticket, cal: BusinessCalendar) -> float | None:
    if t.resolved_at is None or t.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        return None
    return cal.business_seconds(t.created_at, t.resolved_at) / 3600.0


async def scan_tickets(rt: Runtime, since: datetime | None = None, flt: TicketFilter | None = None) -> list[Ticket]:
    """Tickets created at or after ``since`` (all when None), newest first."""
    out: list[Ticket] = []
    cursor = None
    while True:
        page = await rt.store.list_tickets(flt, sort="created", cursor=cursor, limit=500)
        for t in page.items:
            if since is not None and t.created_at < since:
                return out
            out.append(t)
        cursor = page.next_cursor
        if cursor is None:
            return out


async def csat_ratings(rt: Runtime) -> dict[str, int]:
    return {k: int(d["rating"]) for k, d in await rt.store.list_docs("csat", limit=10_000_000) if d.get("rating")}


# -- public results ------------------------------------------------------------------------------------------------
@dataclass
class TransparencyRow:
    month: str
    dimension: str  # total | channel | agency
    key: str
    tickets: int | None
    answered: int | None
    first_response_p50_h: float | None
    first_response_p90_h: float | None
    csat_responses: int | None
    csat_avg: float | None
    csat_satisfied_pct: float | None  # share of 4 and 5
    hidden: list[str] = field(default_factory=list)  # figures hidden because they count too few

    @property
    def label(self) -> str:
        return CHANNEL_LABELS.get(self.key, self.key) if self.dimension == "channel" else self.key


CSV_COLUMNS = ["mes", "dimension", "clave", "tickets", "respondidos", "primera_respuesta_p50_horas_habiles",
               "primera_respuesta_p90_horas_habiles", "encuestas", "satisfaccion_promedio", "satisfechos_pct",
               "ocultos"]


def transparency_rows(tickets: list[Ticket], ratings: dict[str, int], cal: BusinessCalendar, months: list[str],
                      min_count: int, non_agency: frozenset[str] = frozenset()) -> list[TransparencyRow]:
    wanted = set(months)
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: {"n": [], "fr": [], "csat": []})
    for t in tickets:
        m = month_key(t.created_at, cal)
        if m not in wanted:
            continue
        fr = first_response_h(t, cal)
        rating = ratings.get(t.id)
        for dim, key in (("total", "Total"), ("channel", t.channel), ("agency", agency_of(t, non_agency))):
            g = groups[(m, dim, key)]
            g["n"].append(1)
            if fr is not None:
                g["fr"].append(fr)
            if rating is not None:
                g["csat"].append(float(rating))
    order = {"total": 0, "channel": 1, "agency": 2}
    rows: list[TransparencyRow] = []
    for (m, dim, key), g in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
        n, frs, cs = len(g["n"]), g["fr"], g["csat"]
        hidden: list[str] = []
        if n < min_count:
            rows.append(TransparencyRow(m, dim, key, None, None, None, None, None, None, None,
                                        ["tickets", "first_response", "csat"]))
            continue
        row = TransparencyRow(m, dim, key, n, len(frs), r1(percentile(frs, 0.5)), r1(percentile(frs, 0.9)), len(cs),
                              r2(sum(cs) / len(cs)) if cs else None,
                              r1(100.0 * sum(1 for x in cs if x >= 4) / len(cs)) if cs else None)
        if len(frs) < min_count:
            row.answered = row.first_response_p50_h = row.first_response_p90_h = None
            hidden.append("first_response")
        if len(cs) < min_count:
            row.csat_responses = None
            row.csat_avg = row.csat_satisfied_pct = None
            hidden.append("csat")
        row.hidden = hidden
        rows.append(row)
    return rows


def transparency_csv_rows(rows: list[TransparencyRow]) -> list[list[Any]]:
    return [[r.month, r.dimension, r.key, r.tickets, r.answered, r.first_response_p50_h, r.first_response_p90_h,
             r.csat_responses, r.csat_avg, r.csat_satisfied_pct, " ".join(r.hidden)] for r in rows]


@dataclass
class TransparencyReport:
    months: list[str]
    rows: list[TransparencyRow]
    min_count: int
    computed_at: datetime

    def select(self, dimension: str) -> list[TransparencyRow]:
        return [r for r in self.rows if r.dimension == dimension]


async def transparency(rt: Runtime, now: datetime | None = None, use_cache: bool = True) -> TransparencyReport:
    s = rt.settings.transparency
    cache = rt.services.setdefault("quality.transparency_cache", {})
    hit = cache.get("report")
    if use_cache and now is None and hit and time.monotonic() - hit[0] < s.cache_s:
        return hit[1]
    from workers.quality.sla import calendar

    cal = calendar(rt)
    now = now or utcnow()
    months = recent_months(now, s.months, cal)
    first = datetime.fromisoformat(months[0] + "-01").replace(tzinfo=cal.tz)
    tickets = await scan_tickets(rt, since=first)
    report = TransparencyReport(months, transparency_rows(tickets, await csat_ratings(rt), cal, months, s.min_count,
                                                          non_agency_queues(rt)), s.min_count, now)
    cache["report"] = (time.monotonic(), report)
    return report


# -- dashboard -----------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    id: str
    title: str
    description: str
    columns: list[str]
    rows: list[list[Any]]
    chart: dict[str, Any]  # {"type": "line"|"bar"|"hbar", "categories": [...], "series": [{"name", "values"}], "unit"}


def _top(counter: Counter[str], n: int) -> list[str]:
    return [k for k, _ in counter.most_common(n)]


def _volume_figure(fid: str, title: str, dim_name: str, keyf: Any, tickets: list[Ticket], days: list[str],
                   cal: BusinessCalendar, top: int, label: Any = None) -> Figure:
    per_day: dict[tuple[str, str], int] = Counter()
    totals: Counter[str] = Counter()
    for t in tickets:
        k = keyf(t)
        per_day[(day_key(t.created_at, cal), k)] += 1
        totals[k] += 1
    keys = sorted(totals)
    rows = [[d, k, per_day[(d, k)]] for d in days for k in keys if per_day[(d, k)]]
    label = label or (lambda k: k)
    if fid == "volume_channel":
        chart = {"type": "line", "categories": days,
                 "series": [{"name": label(k), "values": [per_day[(d, k)] for d in days]} for k in _top(totals, top)],
                 "unit": "tickets"}
    else:
        chart = {"type": "hbar", "categories": [label(k) for k in _top(totals, top)],
                 "series": [{"name": "Tickets", "values": [totals[k] for k in _top(totals, top)]}], "unit": "tickets"}
    desc = f"Tickets creados por día y {dim_name}."
    return Figure(fid, title, desc, ["fecha", dim_name, "tickets"], rows, chart)


def dashboard_figures(tickets: list[Ticket], backlog: list[Ticket], ratings: dict[str, int],
                      agents: list[dict[str, Any]], cal: BusinessCalendar, now: datetime, days: int,
                      non_agency: frozenset[str] = frozenset()) -> list[Figure]:
    day_list = [day_key(now - timedelta(days=i), cal) for i in range(days - 1, -1, -1)]
    figs: list[Figure] = []
    figs.append(_volume_figure("volume_channel", "Volumen por canal", "canal", lambda t: t.channel, tickets,
                               day_list, cal, 8, lambda k: CHANNEL_LABELS.get(k, k)))
    figs.append(_volume_figure("volume_agency", "Volumen por organismo", "organismo",
                               lambda t: agency_of(t, non_agency), tickets, day_list, cal, 12))

    def tramite(t: Ticket) -> str:
        tag = t.tags.get("tramite")
        return (tag.label or tag.value) if tag is not None and tag.value else UNCLASSIFIED

    figs.append(_volume_figure("volume_tramite", "Volumen por trámite", "tramite", tramite, tickets, day_list, cal,
                               12))

    # response and resolution percentiles per channel
    fr: dict[str, list[float]] = defaultdict(list)
    res: dict[str, list[float]] = defaultdict(list)
    count: Counter[str] = Counter()
    for t in tickets:
        for k in (t.channel, "Total"):
            count[k] += 1
            if (h := first_response_h(t, cal)) is not None:
                fr[k].append(h)
            if (h := resolution_h(t, cal)) is not None:
                res[k].append(h)
    channels = sorted(k for k in count if k != "Total")
    rows = []
    for k in [*channels, "Total"]:
        rows.append([CHANNEL_LABELS.get(k, k), count[k], len(fr[k]), r1(percentile(fr[k], .5)),
                     r1(percentile(fr[k], .9)), r1(percentile(fr[k], .95)), len(res[k]), r1(percentile(res[k], .5)),
                     r1(percentile(res[k], .9)), r1(percentile(res[k], .95))])
    figs.append(Figure(
        "response_times", "Tiempos de primera respuesta y de resolución",
        "Percentiles 50, 90 y 95 en horas hábiles, por canal, de los tickets creados en el período.",
        ["canal", "tickets", "respondidos", "primera_respuesta_p50_h", "primera_respuesta_p90_h",
         "primera_respuesta_p95_h", "resueltos", "resolucion_p50_h", "resolucion_p90_h", "resolucion_p95_h"], rows,
        {"type": "bar", "categories": [CHANNEL_LABELS.get(k, k) for k in channels],
         "series": [{"name": "Primera respuesta p50", "values": [r1(percentile(fr[k], .5)) for k in channels]},
                    {"name": "Primera respuesta p90", "values": [r1(percentile(fr[k], .9)) for k in channels]},
                    {"name": "Resolución p50", "values": [r1(percentile(res[k], .5)) for k in channels]}],
         "unit": "h"}))

    # SLA compliance per queue
    sla_n: Counter[str] = Counter()
    sla_breached: Counter[str] = Counter()
    for t in tickets:
        if not t.meta.get("sla_policy"):
            continue
        for k in (t.queue or UNCLASSIFIED, "Total"):
            sla_n[k] += 1
            if t.meta.get("sla_breached"):
                sla_breached[k] += 1
    queues = sorted(k for k in sla_n if k != "Total")
    rows = [[k, sla_n[k], sla_breached[k], r1(100.0 * (sla_n[k] - sla_breached[k]) / sla_n[k])]
            for k in [*queues, "Total"] if sla_n[k]]
    figs.append(Figure(
        "sla", "Cumplimiento de SLA", "Tickets del período con política de SLA y sin ningún vencimiento, por cola.",
        ["cola", "tickets_con_sla", "vencidos", "cumplimiento_pct"], rows,
        {"type": "hbar", "categories": queues,
         "series": [{"name": "Cumplimiento %", "values": [r1(100.0 * (sla_n[k] - sla_breached[k]) / sla_n[k])
                                                          for k in queues]}], "unit": "%", "max": 100}))

    # backlog age per queue
    buckets = [("< 1 día", 1), ("1–3 días", 3), ("3–7 días", 7), ("> 7 días", None)]
    age: dict[str, Counter[str]] = defaultdict(Counter)
    for t in backlog:
        d = (now - t.created_at).total_seconds() / 86400
        name = next(b for b, limit in buckets if limit is None or d < limit)
        for k in (t.queue or UNCLASSIFIED, "Total"):
            age[k][name] += 1
    qs = sorted(k for k in age if k != "Total")
    rows = [[k, *(age[k][b] for b, _ in buckets), sum(age[k].values())] for k in [*qs, "Total"] if age[k]]
    figs.append(Figure(
        "backlog", "Antigüedad de los pendientes",
        "Tickets sin resolver (nuevos, abiertos y en espera) según su antigüedad, por cola.",
        ["cola", *(b for b, _ in buckets), "total"], rows,
        {"type": "bar", "categories": [b for b, _ in buckets],
         "series": [{"name": "Tickets", "values": [age["Total"][b] for b, _ in buckets]}], "unit": "tickets"}))

    # CSAT
    by: dict[str, list[int]] = defaultdict(list)
    for t in tickets:
        if t.id in ratings:
            by[t.channel].append(ratings[t.id])
            by["Total"].append(ratings[t.id])
    chans = sorted(k for k in by if k != "Total")
    rows = [[CHANNEL_LABELS.get(k, k), len(by[k]), r2(sum(by[k]) / len(by[k])),
             *(sum(1 for x in by[k] if x == i) for i in range(1, 6))] for k in [*chans, "Total"] if by[k]]
    figs.append(Figure(
        "csat", "Satisfacción (CSAT)", "Respuestas a la encuesta de los tickets del período, por canal.",
        ["canal", "respuestas", "promedio", "1", "2", "3", "4", "5"], rows,
        {"type": "bar", "categories": ["1", "2", "3", "4", "5"],
         "series": [{"name": "Respuestas", "values": [sum(1 for x in by["Total"] if x == i) for i in range(1, 6)]}],
         "unit": "respuestas"}))

    # agent load
    assigned: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    for t in tickets:
        if t.assignee:
            assigned[t.assignee] += 1
            if t.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
                resolved[t.assignee] += 1
    rows = [[a["email"], "sí" if a["online"] else "no", a["load"], a["capacity"], assigned[a["email"]],
             resolved[a["email"]]] for a in sorted(agents, key=lambda a: a["email"])]
    figs.append(Figure(
        "agents", "Carga por agente",
        "Tickets sin resolver asignados a cada agente frente a su capacidad; asignados y resueltos en el período.",
        ["agente", "en_linea", "carga", "capacidad", "asignados_periodo", "resueltos_periodo"], rows,
        {"type": "hbar", "categories": [r[0] for r in rows],
         "series": [{"name": "Carga", "values": [r[2] for r in rows]},
                    {"name": "Capacidad", "values": [r[3] for r in rows]}], "unit": "tickets"}))
    return figs


async def dashboard(rt: Runtime, days: int = 30, now: datetime | None = None) -> list[Figure]:
    from workers.quality.assignment import load_agents
    from workers.quality.sla import calendar

    cal = calendar(rt)
    now = now or utcnow()
    since = now - timedelta(days=days)
    tickets = await scan_tickets(rt, since=since)
    backlog = await scan_tickets(rt, flt=TicketFilter(status=[str(s) for s in OPEN_STATUSES]))
    agents = [{"email": a.email, "online": a.online, "load": a.load, "capacity": a.capacity}
              for a in await load_agents(rt, now)]
    return dashboard_figures(tickets, backlog, await csat_ratings(rt), agents, cal, now, days, non_agency_queues(rt))
