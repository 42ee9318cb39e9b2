"""The dashboard, /transparencia and the survey page in real Chromium: charts render (screenshots saved under
test-results/ and recorded in the test report) and axe-core finds no serious or critical violation."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from inbox.domain import TicketStatus
from inbox.store.base import TicketChanges
from tests.quality.conftest import ingest
from tests.quality.test_transparency import seed
from tests.support.browser import LiveServer, chromium, live_server, new_agent_page
from workers.outbox import queue_reply
from workers.quality import csat, sla

pytestmark = pytest.mark.browser
# pytest-playwright's plugins empty test-results/ when a session starts: INBOX_TEST_RESULTS can point elsewhere.
RESULTS = Path(os.environ.get("INBOX_TEST_RESULTS") or Path(__file__).parents[2] / "test-results")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(tmp_path / "data", **{"transparency.min_count": 2}) as s:
        yield s


@pytest.fixture
async def chrome() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


def serious(results: Any) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


async def recent_activity(rt: Any) -> str:
    queues = ["Ministerio del Interior", "Intendencia de Montevideo", "BPS"]
    for i in range(24):
        channel = ["email", "x", "web", "messenger"][i % 4]
        kind = "email" if channel in ("email", "web") else channel
        t = await ingest(rt, f"r{i}@example.com" if kind == "email" else str(9000 + i), channel=channel, kind=kind,
                         days_ago=(i % 12) + 0.2, text=f"consulta reciente {i}")
        await rt.store.update_ticket(t.id, TicketChanges(queue=queues[i % 3], assignee="ana@example.uy"
                                                         if i % 2 else "beto@example.uy"), "sofia@example.uy")
        if i % 3:
            await queue_reply(rt, t, "respuesta", "ana@example.uy")
        if i % 2 == 1:
            await rt.store.update_ticket(t.id, TicketChanges(status=TicketStatus.RESOLVED), "ana@example.uy")
            await csat.record_answer(rt, t.id, 1 + i % 5)
        await sla.check_ticket(rt, t.id)
    return t.id


async def check_charts(page: Any, minimum: int) -> None:
    charts = page.locator("svg.chart")
    assert await charts.count() >= minimum
    for i in range(await charts.count()):
        chart = charts.nth(i)
        box = await chart.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 40
        assert await chart.get_attribute("role") == "img"
        assert (await chart.locator("title").first.text_content()).strip()
        assert await chart.locator("rect, polyline, circle").count() > 0


async def test_dashboard_and_transparency_render_charts_and_pass_axe(server: LiveServer, chrome: Any,
                                                                    record_property: Any) -> None:
    from axe_playwright_python.async_playwright import Axe

    axe = Axe()
    rt = server.rt
    await seed(rt)
    last = await recent_activity(rt)
    RESULTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}

    # public results, no login
    context = await chrome.new_context(locale="es-UY", viewport={"width": 1280, "height": 900})
    anon = await context.new_page()
    await anon.goto(server.url("/transparencia"))
    await check_charts(anon, 3)
    assert await anon.locator("#t-canal tbody tr").count() >= 2
    shot = RESULTS / "quality-transparencia.png"
    await anon.screenshot(path=str(shot), full_page=True)
    record_property("screenshot_transparencia", str(shot))
    print(f"screenshot: {shot}")
    problems["/transparencia"] = serious(await axe.run(anon))
    # the CSV link downloads
    async with anon.expect_download() as dl:
        await anon.click("a[href='/transparencia.csv']")
    assert (await dl.value).suggested_filename == "transparencia.csv"
    # the survey page of a resolved ticket
    link = csat.survey_link(rt, last).replace(csat.base_url(rt), server.base_url)
    await anon.goto(link)
    await anon.locator("legend").wait_for()
    problems["/encuesta"] = serious(await axe.run(anon))
    await anon.check("input[name=puntaje][value='5']")
    await anon.fill("#comentario", "Excelente")
    await anon.click("button[type=submit]")
    await anon.locator("#thanks-title").wait_for()
    assert (await rt.store.get_doc("csat", last))["rating"] == 5

    # the supervisors' dashboard
    page = await new_agent_page(chrome, server, "sofia@example.uy")
    await page.goto(server.url("/supervision?dias=30"))
    await check_charts(page, 8)
    assert await page.locator("a", has_text=re.compile("Descargar CSV")).count() == 8
    await page.locator("#figura-sla summary").click()
    assert await page.locator("#t-sla tbody tr").count() >= 1
    shot = RESULTS / "quality-dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    record_property("screenshot_dashboard", str(shot))
    print(f"screenshot: {shot}")
    problems["/supervision"] = serious(await axe.run(page))
    async with page.expect_download() as dl:
        await page.click("a[href='/supervision/backlog.csv?dias=30']")
    assert (await dl.value).suggested_filename == "backlog-30d.csv"

    admin = await new_agent_page(chrome, server, "admin@example.uy")
    for path in ("/admin/auditoria", "/admin/datos-personales?q=example.com"):
        await admin.goto(server.url(path))
        problems[path] = serious(await axe.run(admin))
    assert all(not v for v in problems.values()), problems
