"""/transparencia: its figures (CSV download) equal an independent recomputation from the store, and cells counting
fewer cases than the minimum are hidden."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer

from inbox.domain import Tag
from inbox.store.base import TicketChanges
from tests.conftest import make_settings
from tests.quality.conftest import ingest
from web.app import create_app
from workers.outbox import queue_reply
from workers.quality import csat
from workers.quality.calendar import BusinessCalendar
from workers.runtime import close_runtime, open_runtime

MVD = ZoneInfo("America/Montevideo")
MIN = 5


def month_start(months_back: int) -> datetime:
    now = datetime.now(MVD)
    y, m = now.year, now.month - months_back
    while m < 1:
        y, m = y - 1, m + 12
    return datetime(y, m, 1, tzinfo=MVD)


async def seed(rt) -> None:
    plan = [  # (months back, channel, queue or agency tag, how many, answered, ratings)
        (1, "email", "Ministerio del Interior", 9, 8, [5, 4, 4, 3, 5, 2]),
        (1, "x", "Ministerio del Interior", 3, 3, [1, 5]),  # a small cell: hidden
        (1, "email", "BPS", 6, 2, []),  # enough tickets, too few answers
        (2, "web", "Intendencia de Montevideo", 7, 7, [4, 4, 5, 5, 5]),
        (2, "email", None, 5, 5, [3, 3, 3, 4, 1]),
    ]
    n = 0
    for back, channel, agency, count, answered, ratings in plan:
        for i in range(count):
            n += 1
            created = month_start(back) + timedelta(days=3 + i, hours=13 + (i % 3))
            kind = {"email": "email", "web": "email", "x": "x"}[channel]
            sender = f"p{n}@example.com" if kind == "email" else str(1000 + n)
            t = await ingest(rt, sender, channel=channel, kind=kind, sent_at=created)
            if agency == "BPS":  # agency from the tag only (no queue)
                await rt.store.update_ticket(t.id, TicketChanges(tags={"agency": Tag("BPS", "agent")}), "a@gub.uy")
            elif agency:
                await rt.store.update_ticket(t.id, TicketChanges(queue=agency), "a@gub.uy")
            if i < answered:
                await queue_reply(rt, t, "Respuesta", "a@gub.uy")
            if i < len(ratings):
                await csat.record_answer(rt, t.id, ratings[i])


def recompute(tickets, ratings, min_count: int) -> dict[tuple[str, str, str], list]:
    """Independent of workers.quality.stats: the published figures from first principles."""
    cal = BusinessCalendar()
    groups: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: {"n": 0, "fr": [], "cs": []})
    for t in tickets:
        month = t.created_at.astimezone(MVD).strftime("%Y-%m")
        agency = t.queue or (t.tags["agency"].value if "agency" in t.tags else "Sin clasificar")
        for key in (("total", "Total"), ("channel", t.channel), ("agency", agency)):
            g = groups[(month, *key)]
            g["n"] += 1
            if t.first_response_at:
                g["fr"].append(cal.business_seconds(t.created_at, t.first_response_at) / 3600)
            if t.id in ratings:
                g["cs"].append(ratings[t.id])
    out = {}
    for key, g in groups.items():
        if g["n"] < min_count:
            out[key] = [None] * 7
            continue
        fr, cs = g["fr"], g["cs"]
        row = [g["n"], None, None, None, None, None, None]
        if len(fr) >= min_count:
            row[1:4] = [len(fr), round(statistics.median(fr), 1),
                        round(statistics.quantiles(fr, n=10, method="inclusive")[8], 1)]
        if len(cs) >= min_count:
            row[4:7] = [len(cs), round(sum(cs) / len(cs), 2), round(100 * sum(1 for r in cs if r >= 4) / len(cs), 1)]
        out[key] = row
    return out


def number(cell: str) -> float | int | None:
    if cell == "":
        return None
    return float(cell) if "." in cell else int(cell)


async def test_published_figures_equal_a_recomputation(tmp_path) -> None:
    rt = await open_runtime(make_settings(tmp_path / "data", **{"transparency.min_count": MIN}))
    try:
        await seed(rt)
        async with TestClient(TestServer(create_app(rt))) as client:
            r = await client.get("/transparencia.csv")  # public: no login
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
            page = await client.get("/transparencia")
            html = await page.text()
            assert page.status == 200 and "oculto" in html and html.count("<svg") >= 2
        header, rows = rows[0], rows[1:]
        assert header[:3] == ["mes", "dimension", "clave"]
        published = {(r[0], r[1], r[2]): [number(c) for c in r[3:10]] for r in rows}

        tickets = []
        cursor = None
        while True:
            p = await rt.store.list_tickets(cursor=cursor, limit=100)
            tickets.extend(p.items)
            if not (cursor := p.next_cursor):
                break
        ratings = {k: d["rating"] for k, d in await rt.store.list_docs("csat")}
        expected = recompute(tickets, ratings, MIN)
        assert published == expected

        m1 = month_start(1).strftime("%Y-%m")
        m2 = month_start(2).strftime("%Y-%m")
        # small cells are hidden, big ones published
        assert published[(m1, "channel", "x")] == [None] * 7
        assert published[(m1, "agency", "BPS")][0] == 6 and published[(m1, "agency", "BPS")][1] is None
        assert published[(m1, "channel", "email")][0] == 15 and published[(m1, "channel", "email")][4] == 6
        assert published[(m2, "agency", "Sin clasificar")][0] == 5
        assert published[(m2, "channel", "web")][5] == 4.6
        hidden_rows = [r for r in rows if r[10]]
        assert hidden_rows and all(r[3] == "" or "tickets" not in r[10] for r in hidden_rows)
    finally:
        await close_runtime(rt)
