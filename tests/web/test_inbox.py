"""The inbox list: views, combined filters, accent-insensitive search, keyset pagination, counts, SLA sort."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from inbox.domain import Tag
from inbox.store.base import TicketChanges
from tests.web.conftest import ingest, sign_in
from workers.runtime import Runtime


def numbers(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-number="(\d+)"', html)]


async def test_views_and_filters_combine(client: TestClient, app_rt: Runtime) -> None:
    store = app_rt.store
    n1 = await ingest(app_rt, "v1", subject="Renovación de CÉDULA de identidad", sender="maria@example.com",
                      name="María Núñez")
    n2 = await ingest(app_rt, "v2", subject="Pasaporte urgente", channel="x", sender="123", name="Pepe")
    n3 = await ingest(app_rt, "v3", subject="Consulta sobre cédula", channel="web", sender="luis@example.com")
    t1 = await store.get_ticket_by_number(n1)
    t3 = await store.get_ticket_by_number(n3)
    await store.update_ticket(t1.id, TicketChanges(assignee="ana@example.uy", queue="Ministerio del Interior",
                                                   tags={"tramite": Tag("628", "agent", label="Cédula")}), "t")
    await store.update_ticket(t3.id, TicketChanges(status="resolved"), "t")
    await sign_in(client, "ana@example.uy")

    async def listed(qs: str) -> list[int]:
        r = await client.get("/inbox" + qs)
        assert r.status == 200
        return numbers(await r.text())

    assert set(await listed("")) == {n1, n2}  # active statuses by default
    assert await listed("?view=mine") == [n1]
    assert await listed("?view=unassigned") == [n2]
    assert await listed("?channel=x") == [n2]
    assert await listed("?queue=Ministerio+del+Interior") == [n1]
    assert await listed("?tramite=628") == [n1]
    assert await listed("?status=resolved") == [n3]
    assert set(await listed("?status=any")) == {n1, n2, n3}
    # full-text search ignores case and accents, over subjects, texts and contacts; combines with filters
    assert set(await listed("?q=cedula&status=any")) == {n1, n3}
    assert await listed("?q=CEDULA&status=any&channel=web") == [n3]
    assert await listed("?q=renovacion") == [n1]
    assert await listed("?q=nunez") == [n1]
    assert await listed("?q=maria%40example.com") == [n1]
    assert await listed("?q=cedula&view=mine") == [n1]
    assert await listed("?q=zzzzz") == []
    counts = await (await client.get("/inbox/counts?q=cedula&status=any")).json()
    assert counts["current"] == 2 and counts["mine"] == 1 and counts["unassigned"] == 1
    assert counts["channel:x"] == 1 and counts["status:resolved"] == 1 and counts["queue:Ministerio del Interior"] == 1


async def test_keyset_pagination(client: TestClient, app_rt: Runtime) -> None:
    created = [await ingest(app_rt, f"p{i}", subject=f"Consulta {i}") for i in range(57)]
    await sign_in(client, "ana@example.uy")
    html = await (await client.get("/inbox")).text()
    first = numbers(html)
    assert len(first) == 50
    nxt = re.search(r'href="/inbox\?([^"]*cursor=[^"]+)" rel="next"', html)
    assert nxt
    html2 = await (await client.get("/inbox?" + nxt.group(1).replace("&amp;", "&"))).text()
    second = numbers(html2)
    assert len(second) == 7 and not set(first) & set(second)
    assert sorted(first + second) == sorted(created)
    assert 'rel="next"' not in html2
    r = await client.get("/inbox?cursor=not-a-cursor")
    assert r.status == 400


async def test_sla_sort_and_live_rows(client: TestClient, app_rt: Runtime) -> None:
    a = await ingest(app_rt, "s1", subject="Primero")
    b = await ingest(app_rt, "s2", subject="Segundo")
    c = await ingest(app_rt, "s3", subject="Sin SLA")
    for n, due in ((a, "2030-01-02T10:00:00+00:00"), (b, "2030-01-01T10:00:00+00:00")):
        t = await app_rt.store.get_ticket_by_number(n)
        await app_rt.store.update_ticket(t.id, TicketChanges(meta={"sla_due_at": due}), "t")
    await sign_in(client, "ana@example.uy")
    html = await (await client.get("/inbox?sort=sla")).text()
    assert numbers(html) == [b, a, c]
    assert "Vence:" in html
    rows = await (await client.get("/inbox/rows?sort=sla")).text()
    assert rows.lstrip().startswith("<tbody") and numbers(rows) == [b, a, c]
