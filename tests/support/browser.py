"""Real servers and a real browser for the web tests: the whole app on a free port (runtime + ``create_app`` +
the job worker that delivers replies through the email channel's own SMTP sender to an aiosmtpd server,
tests/support/smtp.py), and Debian's Chromium driven by Playwright's async API (see shared/testing-notes.md: never
``playwright install``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.smtp import SmtpServer
from workers.runtime import Runtime, close_runtime, open_runtime, settings_from

CHROMIUM = os.environ.get("INBOX_TEST_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--headless=new", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
PASSWORD = "contraseña-segura-1"
USERS = {
    "ana@example.uy": ("agent", "Ana Pérez", ["Ministerio del Interior"]),
    "beto@example.uy": ("agent", "Beto Suárez", ["Ministerio del Interior"]),
    "sofia@example.uy": ("supervisor", "Sofía Rodríguez", ["Ministerio del Interior", "Intendencia de Montevideo"]),
    "admin@example.uy": ("admin", "Admin General", []),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the app -----------------------------------------------------------------------------------------------------
@dataclass
class LiveServer:
    rt: Runtime
    runner: web.AppRunner
    base_url: str
    smtp: SmtpServer
    stop_jobs: asyncio.Event
    jobs: asyncio.Task[None]

    def url(self, path: str) -> str:
        return self.base_url + path


async def create_users(rt: Runtime) -> None:
    from web.auth import create_user

    for email_, (role, name, queues) in USERS.items():
        await create_user(rt.store, email_, role, PASSWORD, name=name, queues=queues)


@contextlib.asynccontextmanager
async def live_server(data_dir: Path, *, with_users: bool = True, **overrides: Any) -> AsyncIterator[LiveServer]:
    from web.app import create_app
    from workers.jobs import run_jobs

    smtp = await SmtpServer.start()
    account = {"name": "test", "address": "atencion@example.gub.uy", "display_name": "Atención a la Ciudadanía",
               "imap_host": "127.0.0.1", "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_starttls": False,
               "smtp_user": "-"}
    settings = settings_from(None, **{"core.data_dir": str(data_dir), "workers.poll_interval_s": 0.1,
                                      "email.accounts": [account], **overrides})
    rt = await open_runtime(settings)
    if with_users:
        await create_users(rt)
    app = create_app(rt)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    # job loops as `inbox serve` runs them (run_jobs' default): with one loop, the first triage job's cold-start
    # training (~13 s) held up every other job, a reply's delivery included
    jobs = asyncio.create_task(run_jobs(rt, stop=stop))
    server = LiveServer(rt, runner, f"http://127.0.0.1:{port}", smtp, stop, jobs)
    try:
        yield server
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(jobs, 5)
        await runner.cleanup()
        await smtp.stop()
        await close_runtime(rt)


# -- the browser -------------------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def login(page: Any, server: LiveServer, email_: str, password: str = PASSWORD) -> None:
    await page.goto(server.url("/login"))
    await page.fill("input[name=email]", email_)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r".*/inbox.*"))


async def new_agent_page(browser: Any, server: LiveServer, email_: str) -> Any:
    context = await browser.new_context(locale="es-UY", viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await login(page, server, email_)
    return page
