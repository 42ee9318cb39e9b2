"""Fixtures of the web tests: the app under aiohttp's test client (HTTP tests) and helpers to sign in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from inbox.domain import Identity, InboundMessage
from tests.support.browser import PASSWORD, create_users
from web import auth
from web.app import create_app
from workers.runtime import Runtime

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class Recorder:
    """A ChannelSender that records what it was asked to send."""

    def __init__(self, channel: str, warning: str | None = None):
        self.channel = channel
        self.sent: list[Any] = []
        self.warning = warning

    def reply_warning(self, ticket: Any, thread: Any) -> str | None:
        return self.warning

    async def send(self, ticket: Any, message: Any, thread: Any) -> str:
        self.sent.append((ticket, message))
        return f"sent-{len(self.sent)}"


@pytest.fixture(autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """argon2 with its production cost takes ~0.5 s a hash on this machine; tests use the minimum."""
    auth.configure_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    auth.configure_hasher(PasswordHasher())


@pytest.fixture
async def app_rt(rt: Runtime) -> Runtime:
    await create_users(rt)
    rt.channels["email"] = Recorder("email")
    return rt


@pytest.fixture
async def client(app_rt: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(app_rt))) as c:
        yield c


async def csrf_of(client: TestClient, path: str) -> str:
    r = await client.get(path)
    assert r.status == 200, (path, r.status)
    m = CSRF_RE.search(await r.text())
    assert m, f"no CSRF token on {path}"
    return m.group(1)


async def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    token = await csrf_of(client, "/login")
    r = await client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                          allow_redirects=False)
    assert r.status == 303, await r.text()


async def ingest(rt: Runtime, external_id: str, *, subject: str = "Consulta", text: str = "Hola",
                 sender: str = "juan@example.com", name: str | None = "Juan Gómez", channel: str = "email",
                 html: str | None = None, **kw: Any) -> int:
    kind = {"email": "email", "web": "email", "x": "x", "facebook": "facebook", "messenger": "messenger"}[channel]
    outcome = await rt.pipeline.ingest(InboundMessage(
        channel=channel, account="test", external_id=external_id, sender=Identity(kind, sender, name),
        text=text, raw=f"raw-{external_id}".encode(), subject=subject, html=html, **kw))
    assert outcome.ticket_number is not None
    return outcome.ticket_number
