"""The quality pages over HTTP: who may see what, CSV downloads, the audit log, data-protection requests, /metrics."""

from __future__ import annotations

import csv
import io

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from inbox.domain import TicketStatus
from inbox.health import report_health
from inbox.store.base import TicketChanges
from tests.conftest import make_settings
from tests.quality.conftest import drain, ingest
from tests.support.browser import create_users
from tests.web.conftest import CSRF_RE, sign_in
from web.app import create_app
from workers.outbox import queue_reply
from workers.quality import sla
from workers.runtime import close_runtime, open_runtime


async def seeded(rt) -> list:
    await create_users(rt)
    tickets = []
    for i, channel in enumerate(["email", "email", "x", "web", "email"]):
        kind = "x" if channel == "x" else "email"
        t = await ingest(rt, f"p{i}@example.com" if kind == "email" else str(500 + i), channel=channel, kind=kind,
                         days_ago=i * 2, text=f"consulta número {i}")
        await rt.store.update_ticket(t.id, TicketChanges(queue="Ministerio del Interior"), "sofia@example.uy")
        if i % 2 == 0:
            await queue_reply(rt, t, "respuesta", "ana@example.uy")
        tickets.append(t)
    await rt.store.update_ticket(tickets[0].id, TicketChanges(status=TicketStatus.RESOLVED), "ana@example.uy")
    return tickets


def metrics_of(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_roles_csv_and_audit_log(rt) -> None:
    tickets = await seeded(rt)
    async with TestClient(TestServer(create_app(rt))) as client:
        assert (await client.get("/transparencia")).status == 200  # public
        r = await client.get("/supervision", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/login")
        await sign_in(client, "ana@example.uy")  # an agent
        assert (await client.get("/supervision")).status == 403
        assert (await client.get("/admin/auditoria")).status == 403
        assert (await client.get("/admin/datos-personales")).status == 403
        await client.post("/logout", data={"csrf_token": CSRF_RE.search(await (await client.get(
            "/transparencia")).text()).group(1)})

        await sign_in(client, "sofia@example.uy")  # a supervisor
        page = await client.get("/supervision?dias=30")
        html = await page.text()
        assert page.status == 200 and html.count("<svg") >= 7
        for fid in ("volume_channel", "volume_agency", "volume_tramite", "response_times", "sla", "backlog", "csat",
                    "agents"):
            assert f'href="/supervision/{fid}.csv?dias=30"' in html
        r = await client.get("/supervision/volume_channel.csv?dias=30")
        rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
        assert rows[0] == ["fecha", "canal", "tickets"] and sum(int(x[2]) for x in rows[1:]) == 5
        r = await client.get("/supervision/agents.csv")
        agents = {row[0]: row for row in csv.reader(io.StringIO((await r.read()).decode("utf-8-sig")))}
        assert set(agents) >= {"agente", "ana@example.uy", "beto@example.uy"}
        assert (await client.get("/supervision/nope.csv")).status == 404
        assert (await client.get("/admin/auditoria")).status == 403

    async with TestClient(TestServer(create_app(rt))) as client:
        await sign_in(client, "admin@example.uy")
        page = await client.get("/admin/auditoria")
        html = await page.text()
        assert page.status == 200
        assert "sofia@example.uy" in html and "ana@example.uy" in html and "system:ingest" not in html
        page = await client.get("/admin/auditoria?actor=ana@example.uy&tipo=ticket.status")
        html = await page.text()
        assert html.count("ticket.status</td>") == 1 and "sofia@example.uy" not in html
        r = await client.get("/admin/auditoria.csv?actor=sofia")
        rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))[1:]
        assert len(rows) == 5 and {r[2] for r in rows} == {"sofia@example.uy"} and {r[3] for r in rows} == {
            "ticket.queue"}
        assert [int(r[0]) for r in rows] == sorted((int(r[0]) for r in rows), reverse=True)  # newest first

        # export and erase one person; both are in the audit log
        page = await client.get("/admin/datos-personales?q=p1@example.com")
        html = await page.text()
        contact_id = tickets[1].contact_id
        assert f"/admin/datos-personales/{contact_id}/export.json" in html
        r = await client.get(f"/admin/datos-personales/{contact_id}/export.json")
        data = await r.json(content_type=None)
        assert data["contact"]["identities"][0]["value"] == "p1@example.com"
        token = CSRF_RE.search(html).group(1)
        r = await client.post(f"/admin/datos-personales/{contact_id}/borrar",
                              data={"csrf_token": token, "confirmar": "no"})
        assert r.status == 400 and await rt.store.get_contact(contact_id) is not None
        r = await client.post(f"/admin/datos-personales/{contact_id}/borrar",
                              data={"csrf_token": token, "confirmar": "BORRAR"})
        assert r.status == 200 and "Se borraron" in await r.text()
        assert await rt.store.get_contact(contact_id) is None and await rt.store.get_ticket(tickets[1].id) is None
        r = await client.get("/admin/auditoria.csv?actor=admin@example.uy")
        kinds = [row[3] for row in list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))[1:]]
        assert kinds == ["contact.erased", "contact.exported"]


async def test_metrics(tmp_path) -> None:
    rt = await open_runtime(make_settings(tmp_path / "data", **{"csat.delay_s": 0}))
    try:
        await seeded(rt)
        await report_health(rt.store, "email", "atencion", True)
        await report_health(rt.store, "x", "gubuy", False, "401 Unauthorized")
        old = await ingest(rt, "late@example.com", days_ago=15)
        await rt.store.update_ticket(old.id, TicketChanges(queue="BPS"), "sofia@example.uy")
        await sla.check_ticket(rt, old.id)
        await drain(rt, kinds=["sla_notify"])
        async with TestClient(TestServer(create_app(rt))) as client:
            r = await client.get("/metrics")
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            m = metrics_of(await r.text())
            assert m[("inbox_messages_ingested_total", (("channel", "email"),))] == 4
            assert m[("inbox_messages_ingested_total", (("channel", "x"),))] == 1
            assert m[("inbox_messages_ingested_total", (("channel", "web"),))] == 1
            assert m[("inbox_job_queue_depth", (("kind", "deliver"),))] == 3
            assert m[("inbox_sla_breaches_total", (("queue", "BPS"), ("timer", "first_response")))] == 1
            assert m[("inbox_sla_breached_open_tickets", ())] == 1
            assert m[("inbox_channel_up", (("account", "atencion"), ("channel", "email")))] == 1
            assert m[("inbox_channel_up", (("account", "gubuy"), ("channel", "x")))] == 0
            assert m[("inbox_tickets", (("status", "resolved"),))] == 1
            # incremental: a new message is counted once, on the next scrape
            await ingest(rt, "nuevo@example.com")
            m = metrics_of(await (await client.get("/metrics")).text())
            assert m[("inbox_messages_ingested_total", (("channel", "email"),))] == 5
            await drain(rt, kinds=["deliver"])  # no email sender configured: delivery fails for good
            m = metrics_of(await (await client.get("/metrics")).text())
            assert m[("inbox_jobs_dead", (("kind", "deliver"),))] + m[("inbox_replies_failed_total", ())] >= 3
    finally:
        await close_runtime(rt)
    rt = await open_runtime(make_settings(tmp_path / "data2", **{}))
    try:
        rt.settings.metrics.token = "s3cret"
        async with TestClient(TestServer(create_app(rt))) as client:
            assert (await client.get("/metrics")).status == 401
            r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            assert r.status == 200
    finally:
        await close_runtime(rt)
