"""Fixtures of the email channel tests: a real Dovecot, an in-process SMTP server, a runtime wired to both."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dovecot import PASSWORD, Dovecot, started
from tests.support.smtp import SmtpServer
from workers.runtime import Runtime, close_runtime, open_runtime, settings_from

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"
OUR_ADDRESS = "atencionciudadana@example.gub.uy"
OUR_DOMAIN = "inbox.example.gub.uy"


def mail(i: int | str, *, sender: str = "", name: str = "Persona Prueba", subject: str | None = None,
         body: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    """A small plain-text citizen mail with a unique Message-ID."""
    sender = sender or f"persona{i}@example.com"
    lines = [f"From: {name} <{sender}>", f"To: Atención Ciudadana <{OUR_ADDRESS}>",
             f"Subject: {subject if subject is not None else f'Consulta {i}'}",
             "Date: Mon, 03 Nov 2025 10:02:00 -0300", f"Message-ID: <mail-{i}@example.com>",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    text = body if body is not None else f"Buenas, quisiera saber cómo sigue el trámite número {i}. Gracias."
    return ("\r\n".join(lines) + "\r\n\r\n" + text + "\r\n").encode()


def account(name: str, user: str, dc: Dovecot | None = None, smtp: SmtpServer | None = None,
            **extra: Any) -> dict[str, Any]:
    acc: dict[str, Any] = {"name": name, "address": OUR_ADDRESS, "display_name": "Atención Ciudadana",
                           "imap_user": user, "imap_tls": False, "poll_interval_s": 5.0,
                           "smtp_starttls": False, "smtp_user": "-"}
    if dc is not None:
        acc.update(imap_host="127.0.0.1", imap_port=dc.imap_port)
    if smtp is not None:
        acc.update(smtp_host=smtp.host, smtp_port=smtp.port)
    acc.update(extra)
    return acc


def email_settings(data_dir: Path, accounts: list[dict[str, Any]], **overrides: Any):
    base = {"core.data_dir": str(data_dir), "email.accounts": accounts, "email.message_id_domain": OUR_DOMAIN,
            "email.reconnect_min_s": 0.2, "email.reconnect_max_s": 1.0, "email.timeout_s": 10.0}
    base.update({f"email.{k}": v for k, v in overrides.items()})
    return settings_from(None, **base)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    with started() as dc:
        yield dc


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    user = dovecot.new_user()
    dovecot.ensure_maildir(user)
    return user


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = await SmtpServer.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_EMAIL__PASSWORD", PASSWORD)


RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def make_rt(tmp_path: Path) -> AsyncIterator[RuntimeFactory]:
    """Open runtimes with email accounts: ``await make_rt([account(...)], fetch_batch=10)``."""
    opened: list[Runtime] = []

    async def factory(accounts: list[dict[str, Any]], data_dir: Path | None = None, **overrides: Any) -> Runtime:
        rt = await open_runtime(email_settings(data_dir or tmp_path / f"data{len(opened)}", accounts, **overrides))
        opened.append(rt)
        return rt

    yield factory
    for rt in opened:
        await close_runtime(rt)


class WorkerHandle:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> WorkerHandle:
        self.task = asyncio.create_task(self.rt.workers["email"](self.rt, self.stop))
        return self

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def run_worker() -> AsyncIterator[Callable[[Runtime], WorkerHandle]]:
    handles: list[WorkerHandle] = []

    def start(rt: Runtime) -> WorkerHandle:
        handle = WorkerHandle(rt).start()
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        await handle.close()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, every: float = 0.05) -> float:
    """Poll until ``predicate()`` is true; returns the seconds it took."""
    started = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


async def count_messages(rt: Runtime, channel: str = "email") -> int:
    from inbox.domain import TicketFilter

    total = 0
    cursor = None
    while True:
        page = await rt.store.list_tickets(TicketFilter(channel=channel), cursor=cursor, limit=500)
        total += sum(t.message_count for t in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total
